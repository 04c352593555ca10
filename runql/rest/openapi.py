"""The OpenAPI 3.1 document of the REST endpoints, served (without a key) at /openapi.json."""

from enum import StrEnum
from functools import cache
from typing import Any

from runql import __version__
from runql.enums import (
    ActorType,
    AttachmentType,
    ContentPartType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunStatus,
)
from runql.resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from runql.rest.body import IDEMPOTENCY_HEADER
from runql.rest.listing import OPERATORS, RANGE_FILTERS

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}
ANY: Schema = {}
INSTANT: Schema = {"type": "string", "format": "date-time",
                   "examples": ["2025-01-01T00:00:00.000Z"]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _id(prefix: str) -> Schema:
    return {"type": "string", "pattern": f"^{prefix}_[A-Za-z0-9]{{20}}$",
            "examples": [f"{prefix}_Rm4Mnheq2bfEPhBhP7SY"]}


def _enum(values: type[StrEnum], description: str) -> Schema:
    return {"type": "string", "enum": [value.value for value in values],
            "description": f"{description} Clients should tolerate values added later."}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _closed(properties: dict[str, Schema], description: str) -> Schema:
    """An object with exactly these keys, every one always present."""
    return {"type": "object", "description": description, "properties": properties,
            "required": list(properties), "additionalProperties": False}


def _response_schemas() -> dict[str, Schema]:
    actor = _nullable(_ref("Actor"))
    return {
        "Cost": _closed({"amount": {"type": "number"}, "unit": STRING}, "What a run cost."),
        "Actor": _closed({
            "id": _id("act"), "name": STRING, "type": _enum(ActorType, "Who this is."),
            "metadata": OBJECT, "created_at": INSTANT, "updated_at": INSTANT,
        }, "Who wrote a message or attached an item."),
        "Attachment": _closed({
            "id": _id("att"), "type": _enum(AttachmentType, "What it points at."),
            "file_id": _nullable(STRING), "url": _nullable(STRING), "caption": _nullable(STRING),
        }, "A file or link attached to a message."),
        "ContentPart": _closed({
            "id": _id("part"), "type": _enum(ContentPartType, "How to read the text."),
            "text": STRING,
        }, "A piece of a message's text."),
        "MessageContent": _closed({
            "id": _id("cnt"), "message_item_id": _id("msg"),
            "attachments": _array(_ref("Attachment")), "parts": _array(_ref("ContentPart")),
        }, "What a message says."),
        "MessageError": _closed({"code": STRING, "message": STRING}, "Why a message failed."),
        "Message": _closed({
            "id": _id("msg"), "status": _enum(MessageStatus, "The message's state."),
            "type": _enum(MessageType, "What the message carries."),
            "message_group_id": _id("mgrp"), "thread_id": _id("thread"), "actor": actor,
            "content": _nullable(_ref("MessageContent")),
            "error": _nullable(_ref("MessageError")), "created_at": INSTANT,
        }, "One message of a message group."),
        "AttachedItem": _closed({
            "id": _id("itm"), "actor": actor, "key": STRING, "value": ANY, "created_at": INSTANT,
        }, "A value an actor attached under a key."),
        "RunSummary": _closed({
            "id": _id("run"), "agent_id": _id("agent"),
            "status": _enum(RunStatus, "The run's status."), "metadata": OBJECT,
            "started_at": _nullable(INSTANT), "created_at": INSTANT,
            "completed_at": _nullable(INSTANT),
        }, "The run that wrote a message group."),
        "MessageGroup": _closed({
            "id": _id("mgrp"), "status": _enum(MessageGroupStatus, "The group's state."),
            "type": _enum(MessageGroupType, "User input or agent output."),
            "created_at": INSTANT, "thread_id": _id("thread"),
            "parent_message_group_id": _nullable(_id("mgrp")), "metadata": OBJECT,
            "messages": _array(_ref("Message")), "attached_items": _array(_ref("AttachedItem")),
            "run": _ref("RunSummary"),
        }, "The message group a run wrote: the agent's reply."),
        "RunError": _closed({
            "id": _id("err"), "run_id": _id("run"), "code": STRING, "message": STRING,
            "metadata": OBJECT, "created_at": INSTANT,
        }, "An error that occurred during a run."),
        "Run": _run_schema(),
        "Pagination": _closed({
            "has_more_before": {"type": "boolean"}, "has_more_after": {"type": "boolean"},
            "next_cursor": _nullable(STRING), "prev_cursor": _nullable(STRING),
        }, "Where the page is. `next_cursor` (for `after`) and `prev_cursor` (for `before`) "
           "are the page's ends, null only for an empty page; `has_more_after` and "
           "`has_more_before` say whether there are runs beyond them now."),
        "RunList": _closed({"items": _array(_ref("Run")), "pagination": _ref("Pagination")},
                           "A page of runs."),
        "Error": {
            "type": "object",
            "description": "Every error. `code` is stable: bad_user_input, unauthenticated, "
                           "not_found, conflict, method_not_allowed, payload_too_large, "
                           "unsupported_media_type, internal_server_error.",
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status."},
                "code": STRING, "message": STRING,
                "field": {"type": "string", "description": "The parameter, body field or "
                          "header at fault, where there is one."},
                "error_id": {"type": "string", "description": "For a 500: the id of the "
                             "report in the server's log."},
            },
            "required": ["status", "code", "message"],
        },
    }


def _run_schema() -> Schema:
    return _closed({
        "id": _id("run"), "status": _enum(RunStatus, "Where the run is in its life."),
        "agent_id": _id("agent"), "trigger_message_group_id": _id("mgrp"),
        "cost": _nullable(_ref("Cost")) | {"description": "Null until the run has a cost."},
        "message_group": _nullable(_ref("MessageGroup")) | {
            "description": "The reply the run wrote; null until it writes one."},
        "errors": _array(_ref("RunError")), "attached_items": _array(_ref("AttachedItem")),
        "started_at": _nullable(INSTANT), "created_at": INSTANT,
        "completed_at": _nullable(INSTANT), "thread_id": _id("thread"),
        "language": _nullable(STRING), "country": _nullable(STRING),
        "timezone": _nullable(STRING), "metadata": OBJECT, "raw_inputs": ANY,
    }, "One execution of an agent on a message.")


def _request_schemas() -> dict[str, Schema]:
    create: Schema = {
        "type": "object",
        "description": "The spec's body, plus `thread_id` to continue a thread.",
        "properties": {
            "agent_id": _id("agent") | {"description": "The agent to run."},
            "content": {"description": "The message: text, or parts and attachments.",
                        "oneOf": [STRING, _ref("StructuredContent")]},
            "thread_id": _id("thread") | {"description": "Continue this thread (of the same "
                                          "agent); a new thread otherwise."},
            "language": STRING | {"description": "A BCP 47 tag, like en-GB."},
            "country": STRING | {"description": "An ISO 3166-1 alpha-2 code, like US."},
            "timezone": STRING | {"description": "An IANA time zone, like America/New_York."},
            "metadata": OBJECT, "raw_inputs": _nullable(OBJECT),
        },
        "required": ["agent_id", "content"],
        "additionalProperties": False,
    }
    return {
        "CreateRun": create,
        "StructuredContent": {
            "type": "object", "additionalProperties": False,
            "properties": {"parts": _array(_ref("ContentPartInput")),
                           "attachments": _array(_ref("AttachmentInput"))},
        },
        "ContentPartInput": {
            "type": "object", "additionalProperties": False, "required": ["text"],
            "properties": {"type": _enum(ContentPartType, "Defaults to text.") | {
                "default": "text"}, "text": STRING},
        },
        "AttachmentInput": {
            "type": "object", "additionalProperties": False, "required": ["type"],
            "description": "A file_id, a url, or both.",
            "properties": {"type": _enum(AttachmentType, "What it points at."),
                           "file_id": STRING, "url": {"type": "string", "format": "uri"},
                           "caption": STRING},
        },
        "TimeRange": {
            "type": "object", "additionalProperties": False,
            "properties": dict.fromkeys(OPERATORS, INSTANT),
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    """The error responses an operation may give: its own, and those every one may."""
    meanings = {400: "Bad input; `field` names it.", 401: "No valid API key.",
                404: "No such object in the caller's organization.",
                409: "A conflict, such as an idempotency key used with another body.",
                413: "The body is too large.", 415: "The body's media type is not read.",
                429: "Too many requests with this key; retry after `Retry-After` seconds.",
                500: "An unexpected failure; `error_id` finds it in the server's log."}
    error = {"application/json": {"schema": _ref("Error")}}
    return {str(status): {"description": meanings[status], "content": error}
            for status in (*statuses, 401, 429, 500)}


def _query(name: str, schema: Schema, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description, **extra}


def _list_parameters() -> list[dict[str, Any]]:
    many = {"style": "form", "explode": True}
    ranges = [
        _query(name, _ref("TimeRange"), f"{name} within a range: {name}[gte]=…, {name}[lt]=… "
               f"(or {name}.gte=…); operators {', '.join(OPERATORS)}.",
               style="deepObject", explode=True)
        for name in RANGE_FILTERS
    ]
    return [
        _query("id", _array(_id("run")), "Run ids, repeated or comma-separated.", **many),
        _query("status", _array(_enum(RunStatus, "A status.")),
               "Statuses, repeated or comma-separated.", **many),
        _query("agent_id", _array(_id("agent")), "Agent ids.", **many),
        _query("thread_id", _array(_id("thread")), "Thread ids.", **many),
        *ranges,
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                         "default": DEFAULT_PAGE_SIZE}, "How many runs in the page."),
        _query("after", STRING, "The page after this cursor (a `next_cursor`)."),
        _query("before", STRING, "The page before this cursor (a `prev_cursor`)."),
        _query("order", {"type": "string", "enum": ["desc", "asc"], "default": "desc"},
               "By creation time: newest first (desc) or oldest first (asc)."),
    ]


def _run_response(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Run")}}, **extra}


def _paths() -> dict[str, Any]:
    create_body = {"schema": _ref("CreateRun")}
    return {
        "/runs": {
            "get": {
                "operationId": "listRuns", "summary": "List runs",
                "description": "Runs of the caller's organization, filtered, a page at a time.",
                "parameters": _list_parameters(),
                "responses": {"200": {"description": "A page of runs.", "content": {
                    "application/json": {"schema": _ref("RunList")}}}, **_errors(400)},
            },
            "post": {
                "operationId": "createRun", "summary": "Create run",
                "description": "Post a message to an agent: a run starts, PENDING. A body that "
                               "is a JSON object is read as JSON whatever its content type.",
                "parameters": [{
                    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "Send the same key with the same body again (within 24 "
                                   "hours) to get the same run back (200); with another body "
                                   "it is a 409.",
                }],
                "requestBody": {"required": True, "content": {
                    "application/json": create_body,
                    "application/x-www-form-urlencoded": create_body,
                }},
                "responses": {
                    "201": _run_response("The new run.", headers={"Location": {
                        "description": "The run's address.", "schema": STRING}}),
                    "200": _run_response("The run an earlier request with this "
                                         "Idempotency-Key made."),
                    **_errors(400, 404, 409, 413, 415),
                },
            },
        },
        "/runs/{runId}": {
            "get": {
                "operationId": "getRun", "summary": "Get run",
                "parameters": [{"name": "runId", "in": "path", "required": True,
                                "schema": _id("run"), "description": "The run's id."}],
                "responses": {"200": _run_response("The run."), **_errors(400, 404)},
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "The OpenAPI document.", "content": {
                    "application/json": {"schema": OBJECT}}}},
            },
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "runql REST API",
            "version": __version__,
            "description": "The Runs API of the spec over REST. The same runs, ids and data "
                           "as the GraphQL API at /graphql.",
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": {**_response_schemas(), **_request_schemas()},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A runql API key: `Authorization: Bearer runql_sk_…`.",
            }},
        },
    }
