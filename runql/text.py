"""The one rule for text that enters runql: valid Unicode that the response encoder (orjson)
can write and both databases can store, or it is refused with BAD_USER_INPUT naming the field.

Refused, wherever they sit in a value (strings, object keys, at any depth):

- lone surrogates (U+D800-U+DFFF): JSON and UTF-8 have no place for them; orjson refuses to
  write them and PostgreSQL to store them;
- NUL (U+0000): PostgreSQL's text and JSONB cannot hold it, so a write would fail there only;
- integers beyond 64 bits, which orjson cannot write.

Everything else is kept as sent: non-characters, right-to-left marks, 4-byte characters.
Stored JSON values (metadata, raw inputs) also have a depth and a size cap.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from runql.errors import BadUserInput

_INT_RANGE = range(-(2**63), 2**64)


@dataclass(frozen=True)
class JsonCaps:
    """How deep (levels of objects and lists) and how large (bytes of JSON) a stored JSON
    value may be."""

    max_depth: int
    max_bytes: int


def text_problem(text: str) -> str | None:
    """What makes `text` unfit, or None."""
    if text.isascii():
        return "holds a NUL character (U+0000), which cannot be stored" if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        return f"is not valid Unicode: a lone surrogate (U+{code:04X}) at character {error.start}"
    if "\x00" in text:
        return "holds a NUL character (U+0000), which cannot be stored"
    return None


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, str, int]]:
    """(field, problem, depth) of each unfit piece of `value`, and of each container."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield path, f"{path} {problem}", depth
    elif isinstance(value, bool | float) or value is None:
        return
    elif isinstance(value, int):
        if value not in _INT_RANGE:
            yield path, f"{path} is an integer beyond 64 bits", depth
    elif isinstance(value, dict):
        yield path, "", depth + 1
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else "is not a string"
            if problem is not None:
                yield path, f"a key of {path or 'the body'} {problem}", depth + 1
                return
            yield from _walk(item, _key_path(path, key), depth + 1)
    elif isinstance(value, list | tuple):
        yield path, "", depth + 1
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", depth + 1)


def check_value(value: Any, field: str, *, max_depth: int | None = None) -> None:
    """Refuse the first unfit text (or integer) in `value`, naming where it is; and, with
    `max_depth`, a value nested deeper than that."""
    for where, problem, depth in _walk(value, field, 0):
        if problem:
            raise BadUserInput(problem, field=where or None)
        if max_depth is not None and depth > max_depth:
            raise BadUserInput(
                f"{field} is nested more than {max_depth} levels deep (at "
                f"{where}); the limit is RUNQL_MAX_JSON_DEPTH",
                field=field,
            )


def check_text(value: str | None, field: str) -> str | None:
    """One string: refused as check_value refuses it."""
    if value is not None:
        problem = text_problem(value)
        if problem is not None:
            raise BadUserInput(f"{field} {problem}", field=field)
    return value


def check_stored_json(value: Any, field: str, caps: JsonCaps) -> None:
    """A JSON value runql stores: fit text, at most `caps.max_depth` deep and
    `caps.max_bytes` long as JSON."""
    check_value(value, field, max_depth=caps.max_depth)
    size = len(orjson.dumps(value))
    if size > caps.max_bytes:
        raise BadUserInput(
            f"{field} is {size} bytes as JSON; the limit is {caps.max_bytes} "
            "(RUNQL_MAX_JSON_BYTES)",
            field=field,
        )
