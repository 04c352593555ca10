"""Production closes introspection, suggestions and GraphiQL unless settings open them."""

import httpx
import pytest

from runql.settings import Environment
from tests.hardening.conftest import MakeClient, codes

INTROSPECTION = {"query": "{ __schema { queryType { name } } }"}
TYPE_LOOKUP = {"query": '{ __type(name: "Run") { name } }'}
TYPO = {"query": "{ runs { totalCont } }"}
PAGE = {"Accept": "text/html"}


async def _production(client_with: MakeClient, **overrides: object) -> httpx.AsyncClient:
    return await client_with(env=Environment.PRODUCTION, **overrides)


@pytest.mark.parametrize("payload", [INTROSPECTION, TYPE_LOOKUP], ids=["schema", "type"])
async def test_production_refuses_introspection(
    client_with: MakeClient, payload: dict[str, str]
) -> None:
    http = await _production(client_with)

    body = (await http.post("/graphql", json=payload)).json()

    assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection has been disabled" in body["errors"][0]["message"]
    assert "data" not in body


async def test_production_still_answers_typename(client_with: MakeClient) -> None:
    http = await _production(client_with)

    body = (await http.post("/graphql", json={"query": "{ __typename }"})).json()

    assert body == {"data": {"__typename": "Query"}}


async def test_production_hides_field_suggestions(client_with: MakeClient) -> None:
    http = await _production(client_with)

    body = (await http.post("/graphql", json=TYPO)).json()

    assert body["errors"][0]["message"] == "Cannot query field 'totalCont' on type 'RunConnection'."
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_production_hides_suggestions_in_variable_errors(client_with: MakeClient) -> None:
    http = await _production(client_with)
    payload = {
        "query": "query($f: RunFilter) { runs(filter: $f) { totalCount } }",
        "variables": {"f": {"statuss": "ERROR"}},
    }

    body = (await http.post("/graphql", json=payload)).json()

    assert codes(body) == ["BAD_USER_INPUT"]
    assert "unknown field 'statuss'. Found" in body["errors"][0]["message"]
    assert "Did you mean" not in body["errors"][0]["message"]


async def test_production_serves_no_graphiql(client_with: MakeClient) -> None:
    http = await _production(client_with)

    response = await http.get("/graphql", headers=PAGE)

    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()
    assert codes(response.json()) == ["NOT_FOUND"]


async def test_settings_open_introspection_and_graphiql_in_production(
    client_with: MakeClient,
) -> None:
    http = await _production(client_with, introspection=True, graphiql=True)

    schema = (await http.post("/graphql", json=INTROSPECTION)).json()
    typo = (await http.post("/graphql", json=TYPO)).json()
    page = await http.get("/graphql", headers=PAGE)

    assert schema == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    assert "Did you mean 'totalCount'?" in typo["errors"][0]["message"]
    assert (page.status_code, "graphiql" in page.text.lower()) == (200, True)


async def test_development_keeps_introspection_suggestions_and_graphiql(
    client_with: MakeClient,
) -> None:
    http = await client_with()

    schema = (await http.post("/graphql", json=INTROSPECTION)).json()
    typo = (await http.post("/graphql", json=TYPO)).json()
    page = await http.get("/graphql", headers=PAGE)

    assert schema["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert "Did you mean 'totalCount'?" in typo["errors"][0]["message"]
    assert page.status_code == 200


async def test_settings_can_close_them_in_development(client_with: MakeClient) -> None:
    http = await client_with(introspection=False, graphiql=False)

    schema = (await http.post("/graphql", json=INTROSPECTION)).json()
    page = await http.get("/graphql", headers=PAGE)

    assert set(codes(schema)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert page.status_code == 404
