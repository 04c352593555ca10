"""Automatic Persisted Queries over HTTP, as Apollo's clients speak them."""

import hashlib
import json
from typing import Any

import httpx

QUERY = "query Few($first: Int) { runs(first: $first) { edges { node { id status } } } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


def _persisted(digest: str = HASH, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def _post(http: httpx.AsyncClient, **payload: Any) -> httpx.Response:
    return await http.post("/graphql", json={"variables": {"first": 2}, **payload})


async def test_an_unknown_hash_asks_for_the_document(http: httpx.AsyncClient) -> None:
    response = await _post(http, extensions=_persisted())

    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    assert response.headers["cache-control"] == "private, no-cache, must-revalidate"


async def test_the_hash_stands_for_the_document_once_it_was_sent(http: httpx.AsyncClient) -> None:
    registered = await _post(http, query=QUERY, extensions=_persisted())
    by_hash = await _post(http, extensions=_persisted())
    by_get = await http.get(
        "/graphql",
        headers={"Accept": "application/json"},
        params={"extensions": json.dumps(_persisted()), "variables": json.dumps({"first": 2})},
    )

    assert registered.status_code == by_hash.status_code == by_get.status_code == 200
    assert len(registered.json()["data"]["runs"]["edges"]) == 2
    assert by_hash.json()["data"] == registered.json()["data"] == by_get.json()["data"]


async def test_a_hash_that_is_not_the_documents_is_refused(http: httpx.AsyncClient) -> None:
    wrong = hashlib.sha256(b"{ runs { totalCount } }").hexdigest()
    response = await _post(http, query=QUERY, extensions=_persisted(wrong))

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"message": "provided sha does not match query", "extensions": {"code": "BAD_REQUEST"}}
    ]
    after = await _post(http, extensions=_persisted(wrong))
    assert after.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_another_protocol_version_is_refused(http: httpx.AsyncClient) -> None:
    response = await _post(http, query=QUERY, extensions=_persisted(version=2))

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Unsupported persisted query version"


async def test_requests_without_a_persisted_query_are_as_before(http: httpx.AsyncClient) -> None:
    response = await _post(http, query=QUERY)
    assert len(response.json()["data"]["runs"]["edges"]) == 2
