"""Form-encoded fields with bracketed keys: `content[parts][0][text]=Hi` is
`{"content": {"parts": [{"text": "Hi"}]}}`. Values stay strings; keys numbered 0, 1, 2, …
make a list."""

import re
from typing import Any
from urllib.parse import parse_qsl

from runql.errors import BadUserInput

MAX_FIELDS = 1000

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]+\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]+)\]")


def _path(key: str) -> list[str]:
    match = _KEY.fullmatch(key)
    if match is None:
        raise BadUserInput(
            f"{key!r} is not a field name: write name, or name[key][0] for nested fields", field=key
        )
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _place(root: dict[str, Any], key: str, value: str) -> None:
    path = _path(key)
    node = root
    for segment in path[:-1]:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise BadUserInput(f"{key} conflicts with an earlier field", field=key)
        node = child
    if path[-1] in node:
        raise BadUserInput(f"{key} is given twice; give it once", field=key)
    node[path[-1]] = value


def _listed(value: Any, where: str) -> Any:
    """Nested fields whose keys are all numbers, as lists."""
    if not isinstance(value, dict):
        return value
    converted = {key: _listed(child, f"{where}[{key}]") for key, child in value.items()}
    if not all(key.isdigit() for key in converted):
        return converted
    by_index = {int(key): child for key, child in converted.items()}
    if sorted(by_index) != list(range(len(converted))):
        raise BadUserInput(
            f"{where} is numbered {sorted(by_index)}: number a list 0, 1, 2, …", field=where
        )
    return [by_index[index] for index in range(len(by_index))]


def form_fields(text: str) -> dict[str, Any]:
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:
        raise BadUserInput(
            "the body is neither a JSON object nor form fields (name=value&name=value)",
            field="body",
        ) from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        _place(root, key, value)
    return {key: _listed(value, key) for key, value in root.items()}
