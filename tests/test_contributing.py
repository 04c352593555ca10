"""CONTRIBUTING.md stays true: the files it names exist, and so do the run graph's names and
the loaders' methods its walkthrough uses."""

import re
from pathlib import Path

from runql.resolvers import graph as link_resolvers
from runql.resolvers.loaders import Loaders
from runql.storage import graph

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "CONTRIBUTING.md").read_text()
EXAMPLE = "_run_priority.py"  # the walkthrough's migration, which is to be written


def _paths() -> list[str]:
    quoted = re.findall(r"`([^`\s]+)`", TEXT)
    found = [
        value.split("{")[0].rstrip("/")
        for value in quoted
        if "/" in value and not value.startswith(("GET", "/", "$")) and EXAMPLE not in value
    ]
    blocks = re.findall(r"^(runql/\S+)", TEXT, flags=re.MULTILINE)
    return sorted({path.rstrip(",") for path in [*found, *blocks]})


def test_every_file_it_names_exists() -> None:
    paths = _paths()
    assert len(paths) > 20, paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"CONTRIBUTING.md names files that do not exist: {missing}"


def test_the_run_graph_names_it_uses_exist() -> None:
    for name in ("ToOne", "ToMany", "Paged", "WriterOf", "Composite"):
        assert name in TEXT, name
        assert hasattr(graph, name), name
    run = graph.OBJECTS["Run"]
    assert "language" in run.shown
    assert run.relations["trigger_message_group"] == graph.ToOne(
        "MessageGroup", "trigger_message_group_id"
    )
    assert callable(link_resolvers.link)
    for method in ("by_id", "children", "pages", "counts", "writer"):
        assert f"`{method}`" in TEXT, method
        assert hasattr(Loaders, method), method
