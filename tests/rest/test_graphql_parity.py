"""REST and GraphQL show the same runs: the same ids and data, field by field."""

import re
from typing import Any

import httpx

from runql.storage.tables import RunRow
from tests.conftest import GraphQLClient

# The run query, its fields in the REST document's order (and no aliases: the endpoint caps
# them), with camelCase names that `as_rest` turns into REST's snake_case.
RUN_AS_REST = """
fragment ActorAsRest on Actor { id name type metadata createdAt updatedAt }
fragment ItemAsRest on AttachedItem { id actor { ...ActorAsRest } key value createdAt }
query RunAsRest($id: ID!) {
  run(id: $id) {
    id status agentId triggerMessageGroupId
    cost { amount unit }
    messageGroup {
      id status type createdAt threadId parentMessageGroupId metadata
      messages {
        id status type messageGroupId threadId
        actor { ...ActorAsRest }
        content {
          id messageItemId
          attachments { id type fileId url caption }
          parts { id type text }
        }
        error { code message }
        createdAt
      }
      attachedItems { ...ItemAsRest }
      run { id agentId status metadata startedAt createdAt completedAt }
    }
    errors { id runId code message metadata createdAt }
    attachedItems { ...ItemAsRest }
    startedAt createdAt completedAt threadId language country timezone metadata rawInputs
  }
}
"""

ENUMERATED = frozenset({"status", "type"})
FREE_FORM = frozenset({"metadata", "value", "raw_inputs"})
CAPITAL = re.compile(r"([A-Z])")


def snake(name: str) -> str:
    return CAPITAL.sub(r"_\1", name).lower()


def as_rest(value: Any) -> Any:
    """A GraphQL result as REST names it: snake_case keys, enumerations in lower case."""
    if isinstance(value, list):
        return [as_rest(item) for item in value]
    if not isinstance(value, dict):
        return value
    rest = {}
    for key, child in value.items():
        name = snake(key)
        if name in ENUMERATED and isinstance(child, str):
            rest[name] = child.lower()
        else:
            rest[name] = child if name in FREE_FORM else as_rest(child)
    return rest


def key_order(value: Any) -> Any:
    if isinstance(value, list):
        return [key_order(item) for item in value]
    if isinstance(value, dict):
        return [(key, key_order(child)) for key, child in value.items()]
    return None


def one_run_per_shape(runs: list[RunRow]) -> list[RunRow]:
    """A run of each status, plus the runs with attached items and with errors among them."""
    by_status = {run.status: run for run in runs}
    return list(by_status.values()) + [run for run in runs if run.status == "success"][:6]


async def test_get_run_matches_the_graphql_run_field_by_field(
    http: httpx.AsyncClient, gql: GraphQLClient, runs: list[RunRow]
) -> None:
    compared = one_run_per_shape(runs)
    assert {run.status for run in compared} == {
        "pending",
        "running",
        "success",
        "error",
        "cancelled",
    }
    with_items = with_errors = 0
    for run in compared:
        rest = (await http.get(f"/runs/{run.id}")).json()
        body = await gql(RUN_AS_REST, {"id": run.id})
        assert "errors" not in body, body
        graphql = as_rest(body["data"]["run"])
        assert rest == graphql
        assert key_order(rest) == key_order(graphql)
        with_items += bool(rest["attached_items"])
        with_errors += bool(rest["errors"])
    assert with_items  # the comparison covered attached items and their actors
    assert with_errors


async def test_list_items_are_the_documents_of_get(http: httpx.AsyncClient) -> None:
    listed = (await http.get("/runs", params={"limit": 15})).json()["items"]
    for document in listed:
        assert (await http.get(f"/runs/{document['id']}")).json() == document
