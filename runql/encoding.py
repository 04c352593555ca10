"""JSON for responses: orjson, and for what it refuses (a lone surrogate stored before runql
refused them, an integer beyond 64 bits) the standard library with every non-ASCII character
escaped, which is still valid JSON. Only that failure path is slower."""

import json
from typing import Any

import orjson


def _escaped(value: Any, sort_keys: bool) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=sort_keys,
                      default=str).encode()


def dumps(value: Any, option: int | None = None) -> bytes:
    """`option`: orjson's; OPT_SORT_KEYS is kept on the failure path too."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        return _escaped(value, sort_keys=bool((option or 0) & orjson.OPT_SORT_KEYS))


def dumps_text(value: Any) -> str:
    """Text, for websocket frames and JSON fragments."""
    return dumps(value).decode()
