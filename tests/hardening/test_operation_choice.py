"""The operation that runs is the one operationName names, or the document's only one
(GraphQL spec, GetOperation): anything else is a request error and nothing runs."""

import httpx
import pytest

from runql.security.media import GRAPHQL_RESPONSE
from runql.storage.database import Database
from tests.hardening.conftest import codes
from tests.rest.conftest import row_counts

TWO_QUERIES = "query A { runs(first: 1) { totalCount } } query B { __typename }"
TWO_MUTATIONS = (
    'mutation A { createAgent(input: {name: "a", kind: "echo"}) { agent { id } } } '
    'mutation B { createAgent(input: {name: "b", kind: "echo"}) { agent { id } } }'
)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_two_operations_without_a_name_are_a_request_error(
    http: httpx.AsyncClient, method: str
) -> None:
    payload = {"query": TWO_QUERIES}
    sent = {"params": payload} if method == "GET" else {"json": payload}

    response = await http.request(method, "/graphql", headers={"Accept": GRAPHQL_RESPONSE}, **sent)  # type: ignore[arg-type]

    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]
    assert "operationName" in response.json()["errors"][0]["message"]
    assert "data" not in response.json()


async def test_two_mutations_without_a_name_write_nothing(
    http: httpx.AsyncClient, demo_database: Database
) -> None:
    before = await row_counts(demo_database)

    response = await http.post("/graphql", json={"query": TWO_MUTATIONS})

    assert codes(response.json()) == ["BAD_REQUEST"]
    assert await row_counts(demo_database) == before


async def test_the_named_operation_runs(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": TWO_QUERIES, "operationName": "B"})

    assert response.json()["data"] == {"__typename": "Query"}


async def test_a_name_that_names_no_operation_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": TWO_QUERIES, "operationName": "C"})

    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]


async def test_an_anonymous_operation_among_others_is_graphql_s_own_rule(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/graphql", json={"query": "{ __typename } query B { __typename }"})

    assert set(codes(response.json())) == {"GRAPHQL_VALIDATION_FAILED"}
