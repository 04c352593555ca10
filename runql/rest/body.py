"""`POST /runs` bodies, read into a RunRequest.

The body's fields and their types are the contract's (runql.rest.contract.CreateRun); a body
the model refuses is a BadUserInput naming the first field at fault as REST writes it
(`content.parts[0].text`). What the values mean is checked by the lifecycle, as for GraphQL.

A body that is a JSON object is read as JSON whatever its content type: the spec's example
sends JSON with `curl -d`, which labels it `application/x-www-form-urlencoded`. Other
form-encoded bodies are read as fields (see runql.rest.form). Bodies are capped at twice
`RUNQL_MAX_CONTENT_BYTES` plus 64 KiB: a message at its cap, raw inputs that repeat it (as the
spec's example does), and room for the rest.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from runql.agents.protocol import Attachment, Part
from runql.errors import BadUserInput
from runql.lifecycle.runs import RunRequest
from runql.lifecycle.validation import Content
from runql.rest import contract
from runql.rest.errors import PayloadTooLarge, UnsupportedMediaType
from runql.rest.form import form_fields
from runql.security.strict_json import MalformedJson, parse_json
from runql.text import check_value

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
HEADROOM_BYTES = 64 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"

# What a field's value must be, by the type of pydantic's error; other errors (the contract's
# own) carry their predicate as their message.
PREDICATES = {
    "string_type": "must be a string",
    "enum": "must be a string",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a list",
}
REQUIRED_HINTS = {"content": contract.CONTENT_KINDS}


def body_limit(max_content_bytes: int) -> int:
    return 2 * max_content_bytes + HEADROOM_BYTES


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the body is over {limit} bytes, the limit (twice RUNQL_MAX_CONTENT_BYTES plus 64 KiB)",
        field="body",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
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
        raise BadUserInput(
            'the body must be a JSON object, such as {"agent_id": "agent_…", "content": "Hello"}',
            field="body",
        )
    return value


def body_fields(raw: bytes, content_type: str | None, max_depth: int) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadUserInput("the body is not UTF-8 text", field="body") from None
    if not text.strip():
        raise BadUserInput(
            'the body is empty: send a JSON object such as {"agent_id": '
            '"agent_…", "content": "Hello"}',
            field="body",
        )
    media_type = _media_type(content_type)
    if media_type == MULTIPART:
        raise UnsupportedMediaType(
            f"multipart bodies are not read: send a JSON object, or {FORM} fields",
            field="Content-Type",
        )
    if text.lstrip().startswith("{") or media_type not in (FORM, ""):
        return _json_object(text, max_depth)
    return form_fields(text)


def _field(location: tuple[int | str, ...]) -> str:
    """A validation error's location as REST names the field: `content.parts[0].text`."""
    field = ""
    for step in location:
        if isinstance(step, int):
            field += f"[{step}]"
        elif step not in contract.CONTENT_TAGS:
            field += f".{step}" if field else step
    return field


def _predicate(error: ErrorDetails, field: str) -> str:
    kind = error["type"]
    if kind == "missing" or (error["input"] is None and kind != "unknown_field"):
        hint = REQUIRED_HINTS.get(field)
        return f"is required: {hint}" if hint else "is required"
    if kind == "enum" and isinstance(error["input"], str):
        return f"is one of {error.get('ctx', {}).get('expected')}, not {error['input']!r}"
    return PREDICATES.get(kind, error["msg"])


def _refusal(error: ErrorDetails) -> BadUserInput:
    location = error["loc"]
    if error["type"] == "unknown_field":
        name = error.get("ctx", {})["name"]
        field = _field((*location, name))
        if not location:
            return BadUserInput(
                f"{name!r} is not a field of POST /runs; the fields are "
                f"{', '.join(contract.CreateRun.model_fields)}",
                field=field,
            )
    else:
        field = _field(location)
    return BadUserInput(f"{field} {_predicate(error, field)}", field=field or "body")


def _content(given: str | contract.StructuredContent) -> Content:
    if isinstance(given, str):
        return Content.text(given)
    return Content(
        tuple(Part(part.text, part.type) for part in given.parts or ()),
        tuple(
            Attachment(
                type=attachment.type,
                file_id=attachment.file_id,
                url=attachment.url,
                caption=attachment.caption,
            )
            for attachment in given.attachments or ()
        ),
    )


def run_request(fields: Mapping[str, Any], idempotency_key: str | None) -> RunRequest:
    check_value(dict(fields), "")  # REST's names for the field at fault, before anything else
    try:
        body = contract.CreateRun.model_validate(fields)
    except ValidationError as error:
        raise _refusal(error.errors(include_url=False)[0]) from None
    return RunRequest(
        agent_id=body.agent_id,
        content=_content(body.content),
        thread_id=body.thread_id,
        language=body.language,
        country=body.country,
        timezone=body.timezone,
        metadata=body.metadata or {},
        raw_inputs=body.raw_inputs,
        idempotency_key=idempotency_key,
    )


def rest_name(field: str) -> str:
    """A field as REST names it, from the lifecycle's name (runql.lifecycle.validation's
    FieldNames): the body's are the same; the idempotency key is a header."""
    return IDEMPOTENCY_HEADER if field == "idempotency_key" else field


def idempotency_key(values: list[str]) -> str | None:
    """The `Idempotency-Key` header's value, if it was sent (once)."""
    if len(values) > 1:
        raise BadUserInput(
            f"{IDEMPOTENCY_HEADER} is sent {len(values)} times; send it once",
            field=IDEMPOTENCY_HEADER,
        )
    return values[0] if values else None
