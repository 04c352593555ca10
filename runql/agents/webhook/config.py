"""A webhook agent's config: where runs are POSTed, how long a call may take, how often it is
retried and which headers go with it. The model holds the rules; `check_config` turns a
refusal into the InvalidConfig an agent's owner reads ("retries must be a whole number from 0
to 5")."""

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from runql.agents.webhook.checks import checked_config, must_be, sentence

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 300
DEFAULT_RETRIES = 2
MAX_RETRIES = 5

# Headers runql sets itself (or that would break the request if a config set them).
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "connection", "idempotency-key"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")


def _absolute_http(value: str) -> str:
    """`value` when it is an absolute http(s) URL with a host that httpx can send to."""
    problem = ValueError("not an absolute http or https URL")
    if not value or value != value.strip():
        raise problem
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
        parsed = httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        raise problem from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not parsed.host:
        raise problem
    return value


def _header(name: object, value: object, seen: set[str]) -> None:
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise sentence(
            f"headers: {str(name)[:40]!r} is not a valid header name (letters, "
            "digits and !#$%&'*+-.^_`|~ only)"
        )
    if name.lower() in RESERVED_HEADERS:
        raise sentence(
            f"headers may not set {name}; runql sets {', '.join(sorted(RESERVED_HEADERS))} itself"
        )
    if name.lower() in seen:
        raise sentence(f"headers names {name} more than once")
    seen.add(name.lower())
    if not isinstance(value, str) or not _HEADER_VALUE.match(value):
        raise sentence(
            f"headers: the value of {name} must be a string of printable ASCII characters"
        )


def _headers(value: object) -> object:
    if not isinstance(value, Mapping):
        raise sentence("headers must be an object of header names to string values")
    seen: set[str] = set()
    for name, header_value in value.items():
        _header(name, header_value, seen)
    return dict(value)


Url = Annotated[
    StrictStr,
    AfterValidator(_absolute_http),
    must_be("an absolute http or https URL with a host", echo=False),
]
Seconds = Annotated[
    Annotated[StrictInt, Field(gt=0, le=MAX_TIMEOUT_S)]
    | Annotated[StrictFloat, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)],
    must_be(f"a number of seconds above 0 and at most {MAX_TIMEOUT_S}", echo=False),
]
Retries = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_RETRIES),
    must_be(f"a whole number from 0 to {MAX_RETRIES}", echo=False),
]
Headers = Annotated[dict[str, str], BeforeValidator(_headers)]


class WebhookConfig(BaseModel):
    """What a webhook agent's `config` holds (`createAgent`, `updateAgent`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Webhook config")

    url: Url = Field(
        repr=False,
        description=(
            "The http or https URL runs are POSTed to; its host must pass the egress policy."
        ),
    )
    timeout_s: Seconds = Field(
        DEFAULT_TIMEOUT_S,
        description=("Seconds the whole call may take, retries and their waits included."),
    )
    retries: Retries = Field(
        DEFAULT_RETRIES,
        description=("How often a 408, 429, 5xx or failed connection is tried again."),
    )
    headers: Headers = Field(
        default_factory=dict,
        repr=False,
        description=(
            "Headers sent with every request (not those runql sets itself); values are hidden "
            "when the agent is read."
        ),
    )


def _required(where: str) -> str:
    # The url is the only key without a default.
    return f"{where} is required: the http or https URL to POST runs to"


def check_config(config: Mapping[str, Any]) -> WebhookConfig:
    """The config as a WebhookConfig, defaults filled in; raises InvalidConfig."""
    return checked_config(WebhookConfig, config, "webhook", _required)
