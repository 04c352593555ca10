"""GET /openapi.json: a valid OpenAPI 3.1 document, public, that the answers conform to."""

from typing import Any

import httpx
import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from runql.rest.contract import CreateRun
from runql.storage.tables import RunRow


@pytest.fixture
async def document(http: httpx.AsyncClient) -> dict[str, Any]:
    http.headers.pop("Authorization")  # the document is public
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def conforms(document: dict[str, Any], schema: str, value: Any) -> None:
    """Validate `value` against one of the document's schemas, its references resolved."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    OAS31Validator(root).validate(value)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_it_describes_the_endpoints_parameters_and_auth(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert set(paths["/runs"]) == {"get", "post"}
    assert set(paths["/runs/{runId}"]) == {"get"}
    listed = {parameter["name"] for parameter in paths["/runs"]["get"]["parameters"]}
    assert listed == {
        "id",
        "status",
        "agent_id",
        "thread_id",
        "created_at",
        "started_at",
        "completed_at",
        "limit",
        "after",
        "before",
        "order",
    }
    body = document["components"]["schemas"]["CreateRun"]
    assert list(body["properties"]) == list(CreateRun.model_fields)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    created = paths["/runs"]["post"]["responses"]
    assert {"200", "201", "400", "401", "404", "409", "413", "415"} <= set(created)


async def test_runs_and_pages_conform_to_the_schemas(
    document: dict[str, Any], http: httpx.AsyncClient, api_key: str
) -> None:
    http.headers["Authorization"] = f"Bearer {api_key}"
    for order in ("desc", "asc"):
        page = (await http.get("/runs", params={"limit": 100, "order": order})).json()
        conforms(document, "RunList", page)
    one = (await http.get(f"/runs/{page['items'][0]['id']}")).json()
    conforms(document, "Run", one)


async def test_the_run_schema_is_strict(
    document: dict[str, Any], http: httpx.AsyncClient, api_key: str, runs: list[RunRow]
) -> None:
    """So that the conformance above means something: a key more or less does not conform."""
    http.headers["Authorization"] = f"Bearer {api_key}"
    run = (await http.get(f"/runs/{runs[-1].id}")).json()
    with pytest.raises(ValidationError):
        conforms(document, "Run", {**run, "extra": 1})
    without = dict(run)
    del without["completed_at"]
    with pytest.raises(ValidationError):
        conforms(document, "Run", without)


async def test_errors_conform_to_the_error_schema(
    document: dict[str, Any], http: httpx.AsyncClient, api_key: str
) -> None:
    unauthenticated = await http.get("/runs")
    http.headers["Authorization"] = f"Bearer {api_key}"
    for response in (
        unauthenticated,
        await http.get("/runs", params={"limit": 0}),
        await http.get("/runs/run_Rm4Mnheq2bfEPhBhP7SY"),
    ):
        conforms(document, "Error", response.json())
