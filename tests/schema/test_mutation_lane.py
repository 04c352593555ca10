"""The mutation lane (runql/fastpath/mutation_lane.py) answers createRun as the standard view
does. Each mutation goes to an app with the lane and to the same app without it
(RUNQL_FAST_LANE=0) with one idempotency key, so that the second is a replay of the run the
first made: the two responses must have the same status, headers (but the request id) and body
bytes, whichever app goes first. Refusals are the view's, and write nothing."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from runql.app import create_app
from runql.endpoint import GraphQLEndpoint
from runql.fastpath.mutation_lane import MutationLane
from runql.operations.metrics import REGISTRY
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.fastpath.test_lane import endpoint_of

PRODUCTION = Settings(env=Environment.PRODUCTION, workers=0, rate_limit_burst=100_000)
CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo",
  config: {delay_ms: 0}}) { agent { id } } }"""
BENCH = """mutation($agent: ID!, $text: String!, $key: String) {
  createRun(input: {agentId: $agent, content: {text: $text}, idempotencyKey: $key})
  { run { id status } } }"""
EVERY_FIELD = """mutation Everything($input: CreateRunInput!) {
  made: createRun(input: $input) {
    __typename
    run { __typename id status agentId threadId triggerMessageGroupId messageGroupId language
      country timezone metadata rawInputs createdAt startedAt completedAt cancelRequestedAt
      also: id }
  } }"""
NESTED = """mutation($input: CreateRunInput!) {
  createRun(input: $input) { run { id thread { id } } } }"""
FRAGMENT = """mutation($input: CreateRunInput!) {
  createRun(input: $input) { run { ...Bits } } } fragment Bits on Run { id status }"""
DIRECTIVE = """mutation($input: CreateRunInput!, $skip: Boolean!) {
  createRun(input: $input) { run { id status @skip(if: $skip) } } }"""


class LaneAndView:
    def __init__(
        self, lane: httpx.AsyncClient, view: httpx.AsyncClient, endpoint: GraphQLEndpoint
    ) -> None:
        self.lane = lane
        self.view = view
        assert endpoint.mutations is not None
        self.mutations: MutationLane = endpoint.mutations

    async def compare(self, payload: dict[str, Any], *, lane_first: bool = True) -> bool:
        """Both apps' answers, which must be the same: whether the lane served its request."""
        before = self.mutations.served
        first, second = (self.lane, self.view) if lane_first else (self.view, self.lane)
        one = await first.post("/graphql", json=payload)
        other = await second.post("/graphql", json=payload)
        assert (one.status_code, one.content) == (other.status_code, other.content)
        assert _headers(one) == _headers(other)
        return self.mutations.served > before

    async def served_alike(self, payload: dict[str, Any], *, lane_first: bool = True) -> None:
        assert await self.compare(payload, lane_first=lane_first)

    async def left_to_the_view(self, payload: dict[str, Any]) -> None:
        assert not await self.compare(payload)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]


@pytest.fixture
async def both(demo_database: Database, api_key: str) -> AsyncIterator[LaneAndView]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with_lane = create_app(PRODUCTION, demo_database)
    without = create_app(PRODUCTION.replace(fast_lane=False), demo_database)
    assert endpoint_of(without).mutations is None
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=with_lane),
            base_url="http://runql.test",
            headers=headers,
        ) as lane,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=without),
            base_url="http://runql.test",
            headers=headers,
        ) as view,
    ):
        yield LaneAndView(lane, view, endpoint_of(with_lane))


@pytest.fixture
async def agent(both: LaneAndView) -> str:
    made = (await both.view.post("/graphql", json={"query": CREATE_AGENT})).json()
    return str(made["data"]["createAgent"]["agent"]["id"])


def _input(agent: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"agentId": agent, "content": {"text": "Hello"}, "idempotencyKey": key, **fields}


async def _runs(database: Database) -> int:
    async with database.read() as session:
        return int((await session.execute(select(func.count()).select_from(RunRow))).scalar_one())


async def test_the_benchmark_document_is_served_alike(both: LaneAndView, agent: str) -> None:
    for index, lane_first in enumerate((True, False)):
        variables = {"agent": agent, "text": "hi", "key": f"bench-{index}"}
        await both.served_alike({"query": BENCH, "variables": variables}, lane_first=lane_first)


async def test_every_field_alias_and_typename_are_served_alike(
    both: LaneAndView, agent: str
) -> None:
    inputs = [
        _input(agent, "all-1"),
        _input(
            agent,
            "all-2",
            language="EN-gb",
            country="us",
            timezone="Europe/Paris",
            # keys in JSONB's order: a replay reads them back from PostgreSQL in that order
            metadata={"a": {"z": "ü"}, "b": [1, 2.5, None]},
            rawInputs={"x": True},
        ),
        _input(
            agent,
            "all-3",
            content={
                "structured": {
                    "parts": [{"text": "one"}, {"text": "two", "type": "TEXT"}],
                    "attachments": [{"type": "IMAGE", "url": "https://example.com/a.png"}],
                }
            },
        ),
    ]
    for lane_first in (True, False):
        for input in inputs:
            input = {**input, "idempotencyKey": f"{input['idempotencyKey']}-{lane_first}"}
            payload = {
                "query": EVERY_FIELD,
                "variables": {"input": input},
                "operationName": "Everything",
            }
            await both.served_alike(payload, lane_first=lane_first)


async def test_a_thread_goes_on_alike(both: LaneAndView, agent: str) -> None:
    first = await both.lane.post(
        "/graphql", json={"query": EVERY_FIELD, "variables": {"input": _input(agent, "t-0")}}
    )
    thread = first.json()["data"]["made"]["run"]["threadId"]
    payload = {"query": EVERY_FIELD, "variables": {"input": _input(agent, "t-1", threadId=thread)}}
    await both.served_alike(payload)


REFUSED: list[dict[str, Any]] = [
    {"agentId": "agent_00000000000000000000"},  # no such agent: NOT_FOUND
    {"agentId": "nope"},  # not an id: BAD_USER_INPUT
    {"threadId": "thread_00000000000000000000"},  # no such thread
    {"language": "not a language tag at all"},
    {"metadata": [1, 2]},  # not an object
    {"content": {"text": "a\u0000b"}},  # unfit text
    {"content": {"text": "x", "structured": {"parts": []}}},  # not one of
]


async def test_refusals_come_from_the_view_and_write_nothing(
    both: LaneAndView, demo_database: Database, agent: str
) -> None:
    before = await _runs(demo_database)
    for fields in REFUSED:
        payload = {"query": EVERY_FIELD, "variables": {"input": {**_input(agent, "r"), **fields}}}
        await both.left_to_the_view(payload)
    assert await _runs(demo_database) == before


async def test_a_key_used_with_another_request_is_the_views_conflict(
    both: LaneAndView, agent: str
) -> None:
    await both.served_alike({"query": EVERY_FIELD, "variables": {"input": _input(agent, "c")}})
    other = {"input": _input(agent, "c", content={"text": "Something else"})}
    await both.left_to_the_view({"query": EVERY_FIELD, "variables": other})


async def test_variables_that_do_not_coerce_are_the_views(both: LaneAndView, agent: str) -> None:
    await both.left_to_the_view({"query": BENCH, "variables": {"agent": agent}})
    await both.left_to_the_view({"query": BENCH, "variables": {"agent": agent, "text": 5}})


async def test_documents_beyond_the_lane_are_the_views(both: LaneAndView, agent: str) -> None:
    for index, document in enumerate((NESTED, FRAGMENT, DIRECTIVE)):
        variables = {"input": _input(agent, f"beyond-{index}"), "skip": False}
        await both.left_to_the_view({"query": document, "variables": variables})


def _samples(name: str) -> tuple[float, float]:
    labels = {"operation": name, "type": "mutation", "outcome": "success"}
    count = REGISTRY.get_sample_value("runql_graphql_operations_total", labels) or 0.0
    timed = REGISTRY.get_sample_value(
        "runql_graphql_operation_duration_seconds_count", {"operation": name, "type": "mutation"}
    )
    return count, timed or 0.0


async def test_the_lane_records_the_operation_as_the_view_does(
    both: LaneAndView, agent: str, caplog: pytest.LogCaptureFixture
) -> None:
    deltas, logged = [], []
    for client, on_lane in ((both.lane, True), (both.view, False)):
        payload = {
            "query": EVERY_FIELD,
            "variables": {"input": _input(agent, f"m-{on_lane}")},
            "operationName": "Everything",
        }
        before, served = _samples("Everything"), both.mutations.served
        with caplog.at_level(logging.INFO, logger="runql.access"):
            caplog.clear()
            response = await client.post("/graphql", json=payload)
        assert response.status_code == 200
        assert (both.mutations.served > served) is on_lane
        deltas.append([a - b for a, b in zip(_samples("Everything"), before, strict=True)])
        [record] = [r for r in caplog.records if r.name == "runql.access"]
        logged.append(vars(record)["operation"])
    assert deltas[0] == deltas[1] == [1, 1]
    assert logged == ["Everything", "Everything"]
