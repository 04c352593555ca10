"""Checks of what a client sends to create a run. Each failure names the field at fault, as
the caller's API names it (runql.errors.FieldNames)."""

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import langcodes
import orjson
import pycountry

from runql.agents.protocol import Attachment, Part
from runql.enums import AttachmentType
from runql.errors import BadUserInput, FieldNames, own_names
from runql.text import JsonCaps, check_stored_json, check_text


@dataclass(frozen=True)
class Content:
    """A user's message: parts in order, and attachments."""

    parts: tuple[Part, ...]
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def text(cls, text: str) -> "Content":
        return cls((Part(text),))


def canonical_case(tag: str) -> str:
    """A BCP 47 tag in the case RFC 5646 (section 2.1.1) recommends: the language subtag lower
    case (`en`), a script title case (`Latn`), a region upper case (`GB`), the rest lower case,
    and everything after a singleton (an extension or private use: `-x-…`) lower case
    (`EN-gb` -> `en-GB`, `zh-hant-tw` -> `zh-Hant-TW`). Only the case changes."""
    first, *rest = tag.split("-")
    subtags = [first.lower()]
    extended = len(first) == 1  # a tag that starts with x- (private use) or i- (grandfathered)
    for subtag in rest:
        extended = extended or len(subtag) == 1
        if extended or len(subtag) not in (2, 4):
            subtags.append(subtag.lower())
        elif len(subtag) == 2:
            subtags.append(subtag.upper())
        else:
            subtags.append(subtag.title())
    return "-".join(subtags)


def check_language(value: str | None, field: str = "language") -> str | None:
    """A BCP 47 tag, in canonical case."""
    if value is None:
        return None
    if "_" in value or not langcodes.tag_is_valid(value):
        raise BadUserInput(
            f"{value!r} is not a BCP 47 language tag, such as en or en-GB", field=field
        )
    return canonical_case(value)


def check_country(value: str | None, field: str = "country") -> str | None:
    if value is None:
        return None
    if len(value) != 2 or pycountry.countries.get(alpha_2=value.upper()) is None:
        raise BadUserInput(
            f"{value!r} is not an ISO 3166-1 alpha-2 country code, such as US", field=field
        )
    return value.upper()


def check_timezone(value: str | None, field: str = "timezone") -> str | None:
    if value is None:
        return None
    if value not in _zones():
        raise BadUserInput(
            f"{value!r} is not an IANA time zone, such as America/New_York", field=field
        )
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_metadata(value: Any, caps: JsonCaps, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadUserInput(f"{field} must be a JSON object", field=field)
    check_stored_json(value, field, caps)
    return value


def check_raw_inputs(value: Any, caps: JsonCaps, field: str = "raw_inputs") -> Any:
    """Raw inputs are a JSON object, as the spec has them (or absent)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadUserInput(
            f'{field} must be a JSON object, such as {{"text": "Hello"}}', field=field
        )
    check_stored_json(value, field, caps)
    return value


def check_content_text(content: Content, names: FieldNames = own_names) -> None:
    """Every text of the content is fit to store (runql.text)."""
    for index, part in enumerate(content.parts):
        check_text(part.text, names(f"content.parts[{index}].text"))
    for index, attachment in enumerate(content.attachments):
        where = f"content.attachments[{index}]"
        check_text(attachment.file_id, names(f"{where}.file_id"))
        check_text(attachment.url, names(f"{where}.url"))
        check_text(attachment.caption, names(f"{where}.caption"))


def check_attachments(attachments: Sequence[Attachment], names: FieldNames = own_names) -> None:
    for index, attachment in enumerate(attachments):
        where = f"content.attachments[{index}]"
        if attachment.file_id is None and attachment.url is None:
            raise BadUserInput(
                f"an attachment needs a {names('file_id')} or a url", field=names(where)
            )
        if attachment.url is not None:
            parts = urlsplit(attachment.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise BadUserInput(
                    f"{attachment.url!r} is not an http(s) URL", field=names(f"{where}.url")
                )
        if attachment.type is AttachmentType.LINK and attachment.url is None:
            raise BadUserInput("a link attachment needs a url", field=names(where))


def check_content(content: Content, *, max_bytes: int, names: FieldNames = own_names) -> Content:
    field = names("content")
    if not content.parts and not content.attachments:
        raise BadUserInput("content is empty: send text, parts or attachments", field=field)
    if all(not part.text.strip() for part in content.parts) and not content.attachments:
        raise BadUserInput("content is empty: its text is blank", field=field)
    check_attachments(content.attachments, names)
    size = sum(len(part.text.encode()) for part in content.parts)
    size += sum(len(orjson.dumps(a.__dict__)) for a in content.attachments)
    if size > max_bytes:
        raise BadUserInput(
            f"content is {size} bytes; the limit is {max_bytes} (RUNQL_MAX_CONTENT_BYTES)",
            field=field,
        )
    return content
