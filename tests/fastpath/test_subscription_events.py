"""Subscription events built from their rows by the event's plan give what the standard executor
gives (data and errors, key order included), for every event of terminal demo runs and of a
streamed run; selections the plan does not cover are executed by the standard executor."""

import json
from typing import Any

import pytest
from graphql import GraphQLSchema, parse
from graphql.execution import Executor
from sqlalchemy import update
from sqlmodel import col
from strawberry.types import ExecutionResult

from runql.bus.hub import Hub
from runql.bus.shared import SharedReads
from runql.enums import RunEventType, RunStatus
from runql.fastpath.cache import plans_of
from runql.fastpath.switch import standard_only
from runql.lifecycle.transitions import transition
from runql.resolvers.context import Context
from runql.storage.events import append_event
from runql.storage.tables import RunRow
from tests.fastpath.conftest import BothExecutors

RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type payload createdAt } }"
PLANNED: dict[str, tuple[str, dict[str, Any]]] = {
    "bench": (RUN_EVENTS, {}),
    "aliases": (
        """subscription($id: ID!) { e: runEvents(runId: $id, after: 2) {
          __typename s: seq seq type t: type createdAt } }""",
        {},
    ),
    "fragments": (
        """fragment F on RunEvent { payload createdAt }
        subscription($id: ID!) { runEvents(runId: $id) { ...F ... on RunEvent { seq } type } }""",
        {},
    ),
    "included": (
        """subscription($id: ID!, $t: Boolean!) { runEvents(runId: $id) {
          seq type @include(if: $t) payload @skip(if: $t) } }""",
        {"t": True},
    ),
    "skipped": (
        """subscription($id: ID!, $t: Boolean!) { runEvents(runId: $id) {
          seq type @include(if: $t) payload @skip(if: $t) } }""",
        {"t": False},
    ),
    "status": (
        "subscription($id: ID!) { runStatus(id: $id) { __typename id status createdAt } }",
        {},
    ),
    "status, every column": (
        """subscription($id: ID!) { runStatus(id: $id) { id status agentId threadId
          triggerMessageGroupId messageGroupId language country timezone metadata rawInputs
          createdAt startedAt completedAt cancelRequestedAt cost { __typename amount unit } } }""",
        {},
    ),
}
STANDARD: dict[str, tuple[str, dict[str, Any]]] = {
    "link": ("subscription($id: ID!) { runEvents(runId: $id) { seq run { id status } } }", {}),
    "two roots": (  # invalid: a subscription has one root field; both refuse it alike
        """subscription($id: ID!) { a: runEvents(runId: $id) { seq }
          b: runStatus(id: $id) { id } }""",
        {},
    ),
}


def _graphql_schema(both: BothExecutors) -> GraphQLSchema:
    found: GraphQLSchema = both.schema._schema
    return found


async def _events(both: BothExecutors, query: str, variables: dict[str, Any]) -> list[str]:
    """Every result of the subscription, as the JSON text a client gets."""
    context = Context.create(
        both.database,
        both.settings,
        both.org_id,
        hub=Hub(),
        shared=SharedReads(both.database),
    )
    source = await both.schema.subscribe(query, variable_values=variables, context_value=context)
    results: list[Any] = (
        [source] if isinstance(source, ExecutionResult) else [result async for result in source]
    )
    texts = []
    for result in results:
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        texts.append(json.dumps(body))
    return texts


async def _compare(both: BothExecutors, query: str, variables: dict[str, Any]) -> list[str]:
    planned = await _events(both, query, variables)
    with standard_only():
        standard = await _events(both, query, variables)
    assert planned == standard
    return planned


async def _terminal_runs(both: BothExecutors) -> list[str]:
    page = await both.standard("{ runs(first: 100) { edges { node { id status } } } }")
    runs = [edge["node"] for edge in page.body["data"]["runs"]["edges"]]
    terminal = {
        run["status"]: run["id"] for run in runs if RunStatus(run["status"].lower()).is_terminal
    }
    assert len(terminal) >= 3
    return list(terminal.values())


def _planned(both: BothExecutors, query: str, variables: dict[str, Any]) -> bool:
    schema = _graphql_schema(both)
    executor = Executor.build(
        schema, parse(query), raw_variable_values={"id": "run_x", **variables}
    )
    assert isinstance(executor, Executor)
    plans = plans_of(schema)
    return (
        plans.event(schema, executor.fragments, executor.variable_values, executor.operation)
        is not None
    )


@pytest.mark.parametrize("name", sorted(PLANNED))
async def test_planned_events_are_the_standard_ones(both: BothExecutors, name: str) -> None:
    query, variables = PLANNED[name]
    assert _planned(both, query, variables)
    for run_id in await _terminal_runs(both):
        assert await _compare(both, query, {"id": run_id, **variables})


@pytest.mark.parametrize("name", sorted(STANDARD))
async def test_other_selections_run_on_the_standard_executor(
    both: BothExecutors, name: str
) -> None:
    query, variables = STANDARD[name]
    assert not _planned(both, query, variables)
    for run_id in (await _terminal_runs(both))[:2]:
        assert await _compare(both, query, {"id": run_id, **variables})


async def test_errors_are_the_standard_ones(both: BothExecutors) -> None:
    for variables in ({"id": "run_00000000000000000000"}, {"id": "agt_x"}, {"id": 5}):
        texts = await _compare(both, RUN_EVENTS, variables)
        assert "errors" in texts[0]


async def test_a_streamed_run_is_the_same(both: BothExecutors) -> None:
    page = await both.standard(
        "{ runs(first: 100, filter: {status: [PENDING]}) { edges { node { id } } } }"
    )
    pending = [edge["node"]["id"] for edge in page.body["data"]["runs"]["edges"]]
    run_id = pending[0]
    async with both.database.write() as session:
        await transition(session, run_id, RunStatus.RUNNING)
    for offset, text in enumerate(["hé", "llo 🙂", '"quoted"\n', "\u2028", "x" * 5000]):
        async with both.database.write() as session:
            payload = {"messageId": "msg_x", "offset": offset, "text": text, "n": [1, 2.5, None]}
            await append_event(session, run_id, RunEventType.MESSAGE_DELTA, payload)
    async with both.database.write() as session:
        await transition(session, run_id, RunStatus.SUCCESS)
    for query, variables in PLANNED.values():
        assert await _compare(both, query, {"id": run_id, **variables})
    assert len(await _compare(both, RUN_EVENTS, {"id": run_id})) == 8


async def test_json_columns_holding_json_text_stay_text(both: BothExecutors) -> None:
    """An event's row holds its JSON columns decoded: a JSON string whose text is JSON itself
    ("123") is written as that string, as the standard executor writes it, not decoded again."""
    run_id = (await _terminal_runs(both))[0]
    async with both.database.write() as session:
        await session.execute(
            update(RunRow)
            .where(col(RunRow.id) == run_id)
            .values(metadata_="123", raw_inputs='{"a": 1}')
        )
    query, variables = PLANNED["status, every column"]
    (text,) = await _compare(both, query, {"id": run_id, **variables})
    status = json.loads(text)["data"]["runStatus"]
    assert (status["metadata"], status["rawInputs"]) == ("123", '{"a": 1}')
