"""The OpenAPI 3.1 document of the REST endpoints, served (without a key) at /openapi.json.

Its components and `GET /runs` parameters are the JSON schema of the contract's models
(runql.rest.contract); the paths, their responses and headers are written here.
"""

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from runql import __version__
from runql.lifecycle.runs import MAX_IDEMPOTENCY_KEY
from runql.rest import contract
from runql.rest.body import IDEMPOTENCY_HEADER

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}
REF_TEMPLATE = "#/components/schemas/{model}"


def _ref(name: str) -> Schema:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _component_schemas() -> dict[str, Schema]:
    """The contract's models, and the models and enumerations they refer to."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "serialization") for model in contract.RESPONSES),
        *((model, "validation") for model in contract.REQUESTS),
    ]
    _, schema = models_json_schema(models, ref_template=REF_TEMPLATE)
    definitions: dict[str, Schema] = schema["$defs"]
    return definitions


def _not_null(schema: Schema) -> Schema:
    """A parameter's schema: a query parameter that is given is never null, nor its default."""
    variants = [variant for variant in schema.get("anyOf", ()) if variant != {"type": "null"}]
    if len(variants) != 1:
        return schema
    rest = {
        key: value
        for key, value in schema.items()
        if key != "anyOf" and (key, value) != ("default", None)
    }
    return {**variants[0], **rest}


def _query(name: str, schema: Schema) -> dict[str, Any]:
    """A `GET /runs` parameter: lists repeated or comma-separated, ranges as deep objects."""
    schema = _not_null(schema)
    style = {}
    if schema.get("type") == "array":
        style = {"style": "form", "explode": True}
    elif "$ref" in schema:
        style = {"style": "deepObject", "explode": True}
    description = schema.pop("description")
    schema.pop("title", None)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **style,
    }


def _list_parameters() -> list[dict[str, Any]]:
    schema = contract.ListRuns.model_json_schema(ref_template=REF_TEMPLATE)
    return [_query(name, field) for name, field in schema["properties"].items()]


def _errors(*statuses: int) -> dict[str, Any]:
    """The error responses an operation may give: its own, and those every one may."""
    meanings = {
        400: "Bad input; `field` names it.",
        401: "No valid API key.",
        404: "No such object in the caller's organization.",
        409: "A conflict, such as an idempotency key used with another body.",
        413: "The body is too large.",
        415: "The body's media type is not read.",
        429: "Too many requests with this key; retry after `Retry-After` seconds.",
        500: "An unexpected failure; `error_id` finds it in the server's log.",
    }
    error = {"application/json": {"schema": _ref("Error")}}
    return {
        str(status): {"description": meanings[status], "content": error}
        for status in (*statuses, 401, 429, 500)
    }


def _run_response(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Run")}},
        **extra,
    }


def _paths() -> dict[str, Any]:
    create_body = {"schema": _ref("CreateRun")}
    return {
        "/runs": {
            "get": {
                "operationId": "listRuns",
                "summary": "List runs",
                "description": "Runs of the caller's organization, filtered, a page at a time.",
                "parameters": _list_parameters(),
                "responses": {
                    "200": {
                        "description": "A page of runs.",
                        "content": {"application/json": {"schema": _ref("RunList")}},
                    },
                    **_errors(400),
                },
            },
            "post": {
                "operationId": "createRun",
                "summary": "Create run",
                "description": "Post a message to an agent: a run starts, PENDING. A body that "
                "is a JSON object is read as JSON whatever its content type.",
                "parameters": [
                    {
                        "name": IDEMPOTENCY_HEADER,
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_IDEMPOTENCY_KEY,
                        },
                        "description": "Send the same key with the same body again (within 24 "
                        "hours) to get the same run back (200); with another body "
                        "it is a 409.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": create_body,
                        "application/x-www-form-urlencoded": create_body,
                    },
                },
                "responses": {
                    "201": _run_response(
                        "The new run.",
                        headers={
                            "Location": {"description": "The run's address.", "schema": STRING}
                        },
                    ),
                    "200": _run_response(
                        "The run an earlier request with this Idempotency-Key made."
                    ),
                    **_errors(400, 404, 409, 413, 415),
                },
            },
        },
        "/runs/{runId}": {
            "get": {
                "operationId": "getRun",
                "summary": "Get run",
                "parameters": [
                    {
                        "name": "runId",
                        "in": "path",
                        "required": True,
                        "schema": contract.Run.model_json_schema()["properties"]["id"],
                        "description": "The run's id.",
                    }
                ],
                "responses": {"200": _run_response("The run."), **_errors(400, 404)},
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": OBJECT}},
                    }
                },
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
            "as the GraphQL API at /graphql. Enumerations may gain values: "
            "clients should tolerate values added later.",
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": _component_schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A runql API key: `Authorization: Bearer runql_sk_…`.",
                }
            },
        },
    }
