"""`POST /runs` bodies, read into a RunRequest.

A body that is a JSON object is read as JSON whatever its content type: the spec's example
sends JSON with `curl -d`, which labels it `application/x-www-form-urlencoded`. Other
form-encoded bodies are read as fields (see runql.rest.form). Bodies are capped at twice
`RUNQL_MAX_CONTENT_BYTES` plus 64 KiB: a message at its cap, raw inputs that repeat it (as the
spec's example does), and room for the rest.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from starlette.requests import Request

from runql.agents.protocol import Attachment, Part
from runql.enums import AttachmentType, ContentPartType
from runql.errors import BadUserInput
from runql.lifecycle.runs import RunRequest
from runql.lifecycle.validation import Content
from runql.rest.errors import PayloadTooLarge, UnsupportedMediaType
from runql.rest.form import form_fields
from runql.security.strict_json import MalformedJson, parse_json
from runql.text import check_value

E = TypeVar("E", bound=StrEnum)

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
HEADROOM_BYTES = 64 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"

FIELDS = ("agent_id", "content", "thread_id", "language", "country", "timezone", "metadata",
          "raw_inputs")
CONTENT_FIELDS = ("parts", "attachments")
PART_FIELDS = ("type", "text")
ATTACHMENT_FIELDS = ("type", "file_id", "url", "caption")


def body_limit(max_content_bytes: int) -> int:
    return 2 * max_content_bytes + HEADROOM_BYTES


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is over {limit} bytes, the limit (twice "
                           "RUNQL_MAX_CONTENT_BYTES plus 64 KiB)", field="body")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _json_object(text: str, max_depth: int) -> dict[str, Any]:
    try:
        value = parse_json(text, max_depth)
    except MalformedJson as error:
        raise BadUserInput(str(error), field="body") from None
    if not isinstance(value, dict):
        raise BadUserInput("the body must be a JSON object, such as "
                           '{"agent_id": "agent_…", "content": "Hello"}', field="body")
    return value


def body_fields(raw: bytes, content_type: str | None, max_depth: int) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadUserInput("the body is not UTF-8 text", field="body") from None
    if not text.strip():
        raise BadUserInput('the body is empty: send a JSON object such as {"agent_id": '
                           '"agent_…", "content": "Hello"}', field="body")
    media_type = _media_type(content_type)
    if media_type == MULTIPART:
        raise UnsupportedMediaType("multipart bodies are not read: send a JSON object, or "
                                   f"{FORM} fields", field="Content-Type")
    if text.lstrip().startswith("{") or media_type not in (FORM, ""):
        return _json_object(text, max_depth)
    return form_fields(text)


def _only(value: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for name in value:
        if name not in allowed:
            raise BadUserInput(f"{where}.{name} is not a field here; the fields are "
                               f"{', '.join(allowed)}", field=f"{where}.{name}")


def _required_string(value: Any, field: str) -> str:
    if value is None:
        raise BadUserInput(f"{field} is required", field=field)
    if not isinstance(value, str):
        raise BadUserInput(f"{field} must be a string", field=field)
    return value


def _optional_string(value: Any, field: str) -> str | None:
    return None if value is None else _required_string(value, field)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadUserInput(f"{field} must be an object", field=field)
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadUserInput(f"{field} must be a list", field=field)
    return value


def _choice(value: Any, field: str, choices: type[E], default: E | None = None) -> E:
    if value is None and default is not None:
        return default
    given = _required_string(value, field)
    known = [choice.value for choice in choices]
    if given not in known:
        raise BadUserInput(f"{field} is one of {', '.join(known)}, not {given!r}", field=field)
    return choices(given)


def _part(value: Any, field: str) -> Part:
    part = _object(value, field)
    _only(part, PART_FIELDS, field)
    text = _required_string(part.get("text"), f"{field}.text")
    part_type = _choice(part.get("type"), f"{field}.type", ContentPartType, ContentPartType.TEXT)
    return Part(text, part_type)


def _attachment(value: Any, field: str) -> Attachment:
    attachment = _object(value, field)
    _only(attachment, ATTACHMENT_FIELDS, field)
    found = Attachment(
        type=_choice(attachment.get("type"), f"{field}.type", AttachmentType),
        file_id=_optional_string(attachment.get("file_id"), f"{field}.file_id"),
        url=_optional_string(attachment.get("url"), f"{field}.url"),
        caption=_optional_string(attachment.get("caption"), f"{field}.caption"),
    )
    if found.file_id is None and found.url is None:
        raise BadUserInput(f"{field} needs a file_id or a url", field=field)
    return found


def content_of(value: Any) -> Content:
    """`content`: a string, or an object of `parts` and `attachments`."""
    if value is None:
        raise BadUserInput("content is required: a string, or an object with parts and "
                           "attachments", field="content")
    if isinstance(value, str):
        return Content.text(value)
    if not isinstance(value, dict):
        raise BadUserInput("content must be a string, or an object with parts and attachments",
                           field="content")
    _only(value, CONTENT_FIELDS, "content")
    parts = _list(value.get("parts"), "content.parts")
    attachments = _list(value.get("attachments"), "content.attachments")
    return Content(
        tuple(_part(part, f"content.parts[{index}]") for index, part in enumerate(parts)),
        tuple(_attachment(attachment, f"content.attachments[{index}]")
              for index, attachment in enumerate(attachments)),
    )


def _metadata(value: Any) -> dict[str, Any]:
    return {} if value is None else _object(value, "metadata")


def _unknown_field(fields: Mapping[str, Any]) -> None:
    for name in fields:
        if name not in FIELDS:
            raise BadUserInput(f"{name!r} is not a field of POST /runs; the fields are "
                               f"{', '.join(FIELDS)}", field=name)


def run_request(fields: Mapping[str, Any], idempotency_key: str | None) -> RunRequest:
    check_value(dict(fields), "")  # REST's names for the field at fault, before anything else
    _unknown_field(fields)
    return RunRequest(
        agent_id=_required_string(fields.get("agent_id"), "agent_id"),
        content=content_of(fields.get("content")),
        thread_id=_optional_string(fields.get("thread_id"), "thread_id"),
        language=_optional_string(fields.get("language"), "language"),
        country=_optional_string(fields.get("country"), "country"),
        timezone=_optional_string(fields.get("timezone"), "timezone"),
        metadata=_metadata(fields.get("metadata")),
        raw_inputs=fields.get("raw_inputs"),
        idempotency_key=idempotency_key,
    )


def idempotency_key(values: list[str]) -> str | None:
    """The `Idempotency-Key` header's value, if it was sent (once)."""
    if len(values) > 1:
        raise BadUserInput(f"{IDEMPOTENCY_HEADER} is sent {len(values)} times; send it once",
                           field=IDEMPOTENCY_HEADER)
    return values[0] if values else None
