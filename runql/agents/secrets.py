"""What of an agent's config may be shown: header values and URL credentials are hidden."""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "[hidden]"


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{HIDDEN}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def shown_config(config: dict[str, Any]) -> dict[str, Any]:
    shown = dict(config)
    if isinstance(shown.get("headers"), dict):
        shown["headers"] = dict.fromkeys(shown["headers"], HIDDEN)
    if isinstance(shown.get("url"), str):
        shown["url"] = _without_credentials(shown["url"])
    return shown
