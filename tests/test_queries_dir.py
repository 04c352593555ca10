"""Every document in queries/ runs against demo data without errors."""

from pathlib import Path

import pytest

from tests.conftest import GraphQLClient

QUERIES = sorted((Path(__file__).resolve().parent.parent / "queries").glob("*.graphql"))
DOCUMENTS = {path.stem: path.read_text() for path in QUERIES}


# Variables each document needs, by file name; ids are looked up from the demo data.
async def _variables(name: str, gql: GraphQLClient) -> dict[str, object]:
    if name == "feed":
        return {"first": 20}
    page = await gql(
        "{ runs(first: 1, filter: {status: SUCCESS}) { edges { node { id threadId "
        "messageGroupId } } } }"
    )
    run = page["data"]["runs"]["edges"][0]["node"]
    return {
        "run-detail": {"id": run["id"]},
        "thread-history": {"id": run["threadId"], "first": 10},
        "node": {"ids": [run["id"], run["threadId"], run["messageGroupId"]]},
    }[name]


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
async def test_document_runs_against_demo_data(path: Path, gql: GraphQLClient) -> None:
    body = await gql(DOCUMENTS[path.stem], await _variables(path.stem, gql))
    assert "errors" not in body, body.get("errors")
    assert body["data"]
    assert all(value is not None for value in body["data"].values())


def test_every_frontend_document_is_present() -> None:
    assert {p.stem for p in QUERIES} >= {"feed", "run-detail", "thread-history", "node"}
