"""The README's code blocks that quote examples/ are the files' text: a code block whose
paragraph before it links a file of examples/ must appear in one of the linked files, as it
stands there (its indentation in the README aside), and every code block of "Connecting a
frontend" is such a quote."""

import re
import textwrap

from tests.examples.conftest import EXAMPLES
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^( *)```\w*\n(.*?)^\1```$", re.S | re.M)
LINKED = re.compile(r"\]\(examples/([^)/]+)\)")


def _quotes(text: str) -> list[tuple[str, list[str], int]]:
    """Each code block of `text`: its code, the examples/ files its paragraph links, where."""
    found = []
    for block in BLOCK.finditer(text):
        before = text[: block.start()].rstrip()
        paragraph = before[before.rfind("\n\n") + 2 :]
        code = textwrap.dedent(block.group(2)).rstrip("\n")
        found.append((code, LINKED.findall(paragraph), block.start()))
    return found


def test_every_quote_of_an_example_is_the_file_s_text() -> None:
    quotes = [(code, files) for code, files, _ in _quotes(README) if files]
    assert len(quotes) >= 5
    for code, files in quotes:
        assert any(code in (EXAMPLES / name).read_text() for name in files), (files, code)


def test_every_block_of_connecting_a_frontend_quotes_an_example() -> None:
    start = README.index("## Connecting a frontend")
    section = README[start : README.index("\n## ", start + 1)]
    blocks = _quotes(section)
    assert len(blocks) >= 4
    assert [code[:40] for code, files, _ in blocks if not files] == []


def test_a_changed_quote_is_caught() -> None:
    text = (EXAMPLES / "urql-client.mjs").read_text()
    changed = (
        "See [`examples/urql-client.mjs`](examples/urql-client.mjs):\n\n```js\n"
        + text[text.index("export function") :].replace("fetchExchange,", "fetchExchange ,", 1)
        + "```\n"
    )
    [(code, files, _)] = _quotes(changed)
    assert files == ["urql-client.mjs"]
    assert code not in text
