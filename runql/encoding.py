"""JSON for responses: orjson, and for what it refuses (a lone surrogate stored before runql
refused them, an integer beyond 64 bits) the standard library with every non-ASCII character
escaped, which is still valid JSON. Only that failure path is slower. Numbers are written by
`number`: whole ones as integers."""

import json
from typing import Any

import orjson


def _escaped(value: Any, sort_keys: bool) -> bytes:
    return json.dumps(
        value, ensure_ascii=True, separators=(",", ":"), sort_keys=sort_keys, default=str
    ).encode()


def dumps(value: Any, option: int | None = None) -> bytes:
    """`option`: orjson's; OPT_SORT_KEYS is kept on the failure path too."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        return _escaped(value, sort_keys=bool((option or 0) & orjson.OPT_SORT_KEYS))


def dumps_text(value: Any) -> str:
    """Text, for websocket frames and JSON fragments."""
    return dumps(value).decode()


WHOLE_LIMIT = 2**53  # beyond it a float's integer is not exact in JavaScript


def number(value: float) -> int | float:
    """A number as runql writes it in JSON (cost.amount on every API): a whole value as an
    integer (`1`, not `1.0`), any other as it is (`2.85`). Whole values past 2**53 stay floats:
    their integer has digits the float does not hold."""
    if value.is_integer() and -WHOLE_LIMIT <= value <= WHOLE_LIMIT:
        return int(value)
    return value
