"""GraphQL over HTTP: methods, request content types, response media types, status codes."""

from typing import Any

import httpx
import pytest

from runql.security.media import GRAPHQL_RESPONSE, negotiate
from tests.hardening.conftest import codes

QUERY = {"query": "{ runs(first: 1) { totalCount } }"}
CREATE_AGENT = 'mutation { createAgent(input: {name: "via-get", kind: "echo"}) { agent { id } } }'
MODERN = {"Accept": GRAPHQL_RESPONSE}


async def _agent_names(http: httpx.AsyncClient) -> list[str]:
    body = (
        await http.post(
            "/graphql", json={"query": "{ agents(first: 100) { edges { node { name } } } }"}
        )
    ).json()
    return [edge["node"]["name"] for edge in body["data"]["agents"]["edges"]]


async def test_get_runs_a_query(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params=QUERY)

    assert response.status_code == 200
    assert response.json()["data"] == {"runs": {"totalCount": 120}}


async def test_get_never_runs_a_mutation(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": CREATE_AGENT})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert codes(response.json()) == ["METHOD_NOT_ALLOWED"]
    assert "via-get" not in await _agent_names(http)


async def test_get_with_an_operation_name_picking_a_mutation_is_405(
    http: httpx.AsyncClient,
) -> None:
    document = "query R { runs { totalCount } } " + CREATE_AGENT.replace("mutation", "mutation W")

    response = await http.get("/graphql", params={"query": document, "operationName": "W"})

    assert response.status_code == 405
    assert "via-get" not in await _agent_names(http)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_subscription_over_plain_http_is_400_not_a_crash(
    http: httpx.AsyncClient, method: str
) -> None:
    payload = {"query": 'subscription { runStatus(id: "run_missing") { id status } }'}
    sent = {"params": payload} if method == "GET" else {"json": payload}

    response = await http.request(method, "/graphql", **sent)  # type: ignore[arg-type]

    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]
    message = response.json()["errors"][0]["message"]  # it names the ways that stream
    assert all(way in message for way in ("websocket", "text/event-stream", "multipart/mixed"))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"query=%7B+runs+%7B+totalCount+%7D+%7D"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n'
            b"{ __typename }\r\n--x--\r\n",
        ),
        ("text/plain", b'{"query": "{ __typename }"}'),
        ("text/plain;charset=UTF-8", b'{"query": "{ __typename }"}'),
        ("application/json; charset=latin-1", b'{"query": "{ __typename }"}'),
        ("application/jsonx", b'{"query": "{ __typename }"}'),
        (None, b'{"query": "{ __typename }"}'),
    ],
    ids=["form", "multipart", "text", "text-utf8", "json-latin1", "json-lookalike", "none"],
)
async def test_post_bodies_other_than_json_are_415(
    http: httpx.AsyncClient, content_type: str | None, body: bytes
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = await http.post("/graphql", content=body, headers=headers)

    assert response.status_code == 415
    assert codes(response.json()) == ["UNSUPPORTED_MEDIA_TYPE"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", GRAPHQL_RESPONSE],
)
async def test_json_post_bodies_run(http: httpx.AsyncClient, content_type: str) -> None:
    response = await http.post(
        "/graphql",
        content=b'{"query": "{ runs { totalCount } }"}',
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 200


async def test_a_cross_site_form_cannot_run_a_mutation(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", data={"query": CREATE_AGENT})

    assert response.status_code == 415
    assert "via-get" not in await _agent_names(http)


@pytest.mark.parametrize(
    "body",
    [
        b'"a string"',
        b"5",
        b"null",
        b'[{"query": "{ __typename }"}]',
        b'{"query": "{ __typename }", "operationName": 5}',
        b'{"query": "{ __typename }", "operationName": {"a": 1}}',
        b'{"query": ["{ __typename }"]}',
        b'{"query": "{ __typename }", "variables": "x"}',
        b'{"query": "{ __typename }", "extensions": []}',
        b"",
        b"{not json",
    ],
    ids=[
        "string",
        "number",
        "null",
        "batch",
        "operation-name-number",
        "operation-name-object",
        "query-list",
        "variables-string",
        "extensions-list",
        "empty",
        "not-json",
    ],
)
async def test_malformed_bodies_are_400_with_a_code(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "body", [b'"a string"', b"5", b"null", b"[]"], ids=["string", "number", "null", "list"]
)
async def test_a_body_that_is_not_an_object_is_400_saying_so(
    http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.9", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0", "application/json"),
        ("text/html,*/*;q=0.8", "application/json"),
    ],
)
def test_the_response_media_type_is_what_the_client_prefers(
    accept: str | None, expected: str
) -> None:
    assert negotiate(accept) == expected


async def test_graphql_response_json_is_answered_when_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json=QUERY, headers=MODERN)

    assert response.status_code == 200
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert response.json()["data"] == {"runs": {"totalCount": 120}}


REQUEST_ERRORS = [
    ({"query": "{ runs { "}, "GRAPHQL_PARSE_FAILED"),
    ({"query": "{ runz }"}, "GRAPHQL_VALIDATION_FAILED"),
    (
        {"query": "query($n: Int!) { runs(first: $n) { totalCount } }", "variables": {}},
        "BAD_USER_INPUT",
    ),
    (
        {"query": "query($n: Int) { runs(first: $n) { totalCount } }", "variables": {"n": "x"}},
        "BAD_USER_INPUT",
    ),
    (
        {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(16)) + " }"},
        "QUERY_TOO_COMPLEX",
    ),
]
REQUEST_ERROR_IDS = ["parse", "validation", "missing-variable", "variable-coercion", "limit"]


@pytest.mark.parametrize(("payload", "code"), REQUEST_ERRORS, ids=REQUEST_ERROR_IDS)
async def test_request_errors_are_400_in_graphql_response_json(
    http: httpx.AsyncClient, payload: dict[str, Any], code: str
) -> None:
    response = await http.post("/graphql", json=payload, headers=MODERN)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert codes(response.json()) == [code]
    assert "data" not in response.json()


@pytest.mark.parametrize(("payload", "code"), REQUEST_ERRORS, ids=REQUEST_ERROR_IDS)
async def test_request_errors_are_200_in_application_json(
    http: httpx.AsyncClient, payload: dict[str, Any], code: str
) -> None:
    response = await http.post("/graphql", json=payload)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert codes(response.json()) == [code]
    assert "data" not in response.json()  # the GraphQL spec: no data before execution


async def test_a_field_error_keeps_data_and_200_in_graphql_response_json(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql",
        headers=MODERN,
        json={"query": '{ agents(first: 1) { totalCount } node(id: "garbage") { id } }'},
    )

    assert response.status_code == 200
    assert response.json()["data"]["agents"]["totalCount"] > 0
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_refusals_of_the_http_layer_follow_the_accept_header(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql", content=b"{", headers={**MODERN, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert codes(response.json()) == ["BAD_REQUEST"]
