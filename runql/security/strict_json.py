"""Request JSON, read strictly: one parser for every body and message runql reads.

A body must be UTF-8 (a leading byte order mark is allowed), JSON as RFC 8259 writes it (no
`NaN` or `Infinity`), with no key twice in one object (last-wins would let
`{"query": "{…}", "query": "mutation {…}"}` run what a reviewer of the first key did not see)
and nested at most `max_depth` levels (RUNQL_MAX_BODY_DEPTH). Anything else raises
MalformedJson, which says what is wrong and, for a duplicate key, which key.

Cost: the standard library's C scanner with a hook per object; the depth is walked only when
the body holds more brackets than the limit (a typical request holds fewer).
"""

import codecs
import json
from collections.abc import Iterable
from typing import Any

CONTAINERS = (dict, list)


class MalformedJson(json.JSONDecodeError):
    """A JSONDecodeError, so that strawberry's websocket handlers treat it as one (4400)."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.msg = message
        self.doc = ""
        self.pos = self.lineno = self.colno = 0

    def __str__(self) -> str:
        return self.msg


def _repeated(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no key repeats")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise MalformedJson(
            f"the key {_repeated(pairs)!r} appears twice in one object; send it once"
        )
    return found


def _no_constant(name: str) -> None:
    raise MalformedJson(f"{name} is not JSON; send numbers as numbers, or null")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_no_constant)


def _too_deep(max_depth: int) -> MalformedJson:
    return MalformedJson(
        f"the JSON nests more than {max_depth} levels deep, the most a request "
        "may (RUNQL_MAX_BODY_DEPTH)"
    )


def _children(node: dict[str, Any] | list[Any]) -> Iterable[Any]:
    return node.values() if isinstance(node, dict) else node


def deeper_than(value: object, max_depth: int) -> bool:
    """Whether `value` nests objects and arrays more than `max_depth` levels, found level by
    level (each level's containers in one comprehension)."""
    level = [value] if isinstance(value, CONTAINERS) else []
    for _ in range(max_depth):
        level = [
            child for node in level for child in _children(node) if isinstance(child, CONTAINERS)
        ]
        if not level:
            return False
    return True


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    skipped = 3 if data[:3] == codecs.BOM_UTF8 else 0  # a byte order mark, as utf-8-sig reads
    try:
        return (data[skipped:] if skipped else data).decode()
    except UnicodeDecodeError as error:
        at = skipped + error.start  # counted in the body as sent, its byte order mark included
        raise MalformedJson(f"the body is not UTF-8 text (byte {at} is 0x{data[at]:02x})") from None


def _bracket_count(data: str | bytes) -> int:
    if isinstance(data, bytes):
        return data.count(b"{") + data.count(b"[")
    return data.count("{") + data.count("[")


def parse_json(data: str | bytes, max_depth: int) -> Any:
    """The JSON value of `data`, or MalformedJson saying why there is none."""
    text = _text(data)
    try:
        value = _DECODER.decode(text)
    except MalformedJson:
        raise
    except RecursionError:
        raise _too_deep(max_depth) from None
    except json.JSONDecodeError as error:
        raise MalformedJson(f"not valid JSON: {error}") from None
    except ValueError:  # an integer of more digits than Python converts
        raise MalformedJson("the JSON holds a number of more than 4,300 digits") from None
    if _bracket_count(data) > max_depth and deeper_than(value, max_depth):
        raise _too_deep(max_depth)
    return value
