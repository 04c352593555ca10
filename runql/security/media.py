"""Media types and status codes of GraphQL over HTTP (graphql.github.io/graphql-over-http).

`application/graphql-response+json` goes to clients that accept it: a request error (the
document does not parse or validate, variables do not coerce, a limit) then has no `data` and a
4xx status. `application/json` is for the others ("legacy" clients): 200 for any GraphQL
response, as the spec asks of it.
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from runql.security.errors import TIMEOUT

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
REQUEST_TYPES = (JSON, GRAPHQL_RESPONSE)
INTERNAL = "INTERNAL_SERVER_ERROR"


def _media_range(item: str) -> tuple[str, float]:
    media_type, *params = (part.strip() for part in item.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return media_type.lower(), quality


HEADER_VALUES = 256  # distinct header values a pure function of one remembers its answer for


@lru_cache(maxsize=HEADER_VALUES)  # clients send a few Accept values, each request one
def negotiate(accept: str | None) -> str:
    """The response's media type: graphql-response+json if the client prefers it, or ties."""
    qualities = dict(_media_range(item) for item in (accept or "").split(",") if item.strip())
    preferred = qualities.get(GRAPHQL_RESPONSE, 0.0)
    return GRAPHQL_RESPONSE if preferred > 0 and preferred >= qualities.get(JSON, 0.0) else JSON


@lru_cache(maxsize=8)
def content_type_header(media_type: str) -> str:
    return f"{media_type}; charset=utf-8" if media_type == GRAPHQL_RESPONSE else media_type


@lru_cache(maxsize=HEADER_VALUES)
def is_json_request(content_type: str | None) -> bool:
    """A POST body runql reads: JSON in UTF-8. Forms and text, which a page on another site may
    send without asking first (no CORS preflight), are refused."""
    media_type, *params = (part.strip().lower() for part in (content_type or "").split(";"))
    charsets = [
        value.strip('"')
        for name, _, value in (p.partition("=") for p in params)
        if name.strip() == "charset"
    ]
    return media_type in REQUEST_TYPES and all(c in ("utf-8", "utf8") for c in charsets)


def _errors(body: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    errors = body.get("errors")
    return errors if isinstance(errors, list) else []


def is_request_error(body: Mapping[str, Any]) -> bool:
    """No data and no error at a field: the operation failed before execution began."""
    errors = _errors(body)
    return body.get("data") is None and bool(errors) and all("path" not in e for e in errors)


def without_data_on_request_error(body: dict[str, Any]) -> dict[str, Any]:
    if is_request_error(body):
        body.pop("data", None)
    return body


def status_of(body: Mapping[str, Any], media_type: str) -> int:
    if media_type != GRAPHQL_RESPONSE or "data" in body:
        return 200
    codes = {(error.get("extensions") or {}).get("code") for error in _errors(body)}
    if INTERNAL in codes:
        return 500
    return 504 if TIMEOUT in codes else 400
