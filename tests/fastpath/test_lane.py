"""The fast lane (runql/fastpath/lane.py) answers as the standard view does: each request goes
to an app with the lane and to the same app without it (RUNQL_FAST_LANE=0), and the two
responses must have the same status, headers (but the request id) and body bytes. The lane must
really serve what it may, and leave the rest (errors, mutations, bad requests) to the view."""

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Message
from strawberry.http import GraphQLRequestData

from runql.app import create_app
from runql.endpoint import GraphQLEndpoint
from runql.fastpath.lane import LaneTimeout
from runql.operations.metrics import REGISTRY
from runql.security.media import GRAPHQL_RESPONSE
from runql.security.timeout import deadline
from runql.settings import Environment, Settings
from runql.storage import raw
from runql.storage.database import Database, sqlite_file
from runql.storage.tables import DEFAULT_ORG_ID
from tests.conftest import GraphQLClient
from tests.fastpath.conftest import DemoIds
from tests.fastpath.operations import operations

QUERIES = Path(__file__).resolve().parents[2] / "queries"
DOCUMENTS = {path.stem: path.read_text() for path in sorted(QUERIES.glob("*.graphql"))}
RUN_BY_ID = "query RunById($id: ID!) { run(id: $id) { id status } }"
PRODUCTION = Settings(env=Environment.PRODUCTION, workers=0, rate_limit_burst=100_000)


def endpoint_of(app: Starlette) -> GraphQLEndpoint:
    for route in app.routes:
        if isinstance(route, Route) and isinstance(route.endpoint, GraphQLEndpoint):
            return route.endpoint
    raise AssertionError("no GraphQL endpoint")


@dataclass
class Answer:
    response: httpx.Response
    served: bool  # by the lane


class LaneAndView:
    def __init__(
        self, lane: httpx.AsyncClient, view: httpx.AsyncClient, endpoint: GraphQLEndpoint
    ) -> None:
        self.lane = lane
        self.view = view
        self.endpoint = endpoint

    @property
    def served(self) -> int:
        assert self.endpoint.lane is not None
        return self.endpoint.lane.served

    async def compare(
        self,
        payload: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Both apps' answers, which must be the same; the lane app's is returned."""
        before = self.served
        kwargs: dict[str, Any] = {"headers": headers or {}}
        kwargs.update({"content": content} if content is not None else {"json": payload})
        lane = await self.lane.post("/graphql", **kwargs)
        served = self.served > before
        view = await self.view.post("/graphql", **kwargs)
        assert (lane.status_code, lane.content) == (view.status_code, view.content)
        assert _headers(lane) == _headers(view)
        return Answer(lane, served)

    async def served_alike(
        self, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        answer = await self.compare(payload, headers=headers)
        assert answer.served, answer.response.text
        body: dict[str, Any] = answer.response.json()
        return body

    async def left_to_the_view(
        self,
        payload: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        answer = await self.compare(payload, content=content, headers=headers)
        assert not answer.served
        return answer.response


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]


@pytest.fixture
async def both(demo_database: Database, api_key: str) -> AsyncIterator[LaneAndView]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with_lane = create_app(PRODUCTION, demo_database)
    without = create_app(PRODUCTION.replace(fast_lane=False), demo_database)
    assert endpoint_of(without).lane is None
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


async def _runs(both: LaneAndView) -> list[dict[str, Any]]:
    body = await both.served_alike(
        {"query": "{ runs(first: 100) { edges { node { id threadId status } } } }"}
    )
    return [edge["node"] for edge in body["data"]["runs"]["edges"]]


@pytest.mark.parametrize("first", [0, 1, 20, 100])
async def test_the_feed_is_served_alike(both: LaneAndView, first: int) -> None:
    body = await both.served_alike({"query": DOCUMENTS["feed"], "variables": {"first": first}})
    assert len(body["data"]["runs"]["edges"]) == first


async def test_every_document_of_queries_is_served_alike(
    both: LaneAndView, demo_ids: DemoIds
) -> None:
    runs = await _runs(both)
    for run in runs[:: len(runs) // 6]:
        await both.served_alike({"query": DOCUMENTS["run-detail"], "variables": {"id": run["id"]}})
        await both.served_alike(
            {"query": DOCUMENTS["thread-history"], "variables": {"id": run["threadId"], "first": 3}}
        )
    ids = [values[0] for values in demo_ids.by_kind.values()]
    await both.served_alike({"query": DOCUMENTS["node"], "variables": {"ids": ids}})
    await both.served_alike(
        {"query": RUN_BY_ID, "variables": {"id": runs[0]["id"]}, "operationName": "RunById"}
    )


async def test_fragments_directives_aliases_and_several_operations(both: LaneAndView) -> None:
    document = """
        query A($skip: Boolean!, $first: Int = 2) {
          first: runs(first: $first) { edges { node { ...Bits status @skip(if: $skip) } } }
          again: runs(first: 1) @include(if: $skip) { totalCount }
        }
        query B { __typename runs(first: 1) { edges { node { ... on Run { id } } } } }
        fragment Bits on Run { id createdAt }"""
    for skip in (True, False):
        body = await both.served_alike(
            {"query": document, "operationName": "A", "variables": {"skip": skip}}
        )
        assert ("again" in body["data"]) is skip
    await both.served_alike({"query": document, "operationName": "B", "variables": None})
    several = await both.compare({"query": document, "variables": {"skip": True}})
    assert not several.served  # no operationName for two operations: the view's request error
    assert several.response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_the_media_type_is_negotiated_alike(both: LaneAndView) -> None:
    payload = {"query": RUN_BY_ID, "variables": {"id": "run_00000000000000000000"}}
    for accept in (
        GRAPHQL_RESPONSE,
        "application/json",
        "*/*",
        f"application/json;q=0.5, {GRAPHQL_RESPONSE}",
    ):
        await both.served_alike(payload, headers={"Accept": accept})
    answer = await both.compare(payload, headers={"Accept": GRAPHQL_RESPONSE})
    assert answer.response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (DOCUMENTS["feed"], {"first": 101}),  # an argument refused at execution
        (DOCUMENTS["run-detail"], {"id": "nope"}),
        (DOCUMENTS["feed"], {"first": "many"}),  # variables that do not coerce
        (RUN_BY_ID, {}),
        ("{ runs { edges { node { id } } ", None),  # does not parse
        ("{ runs { totalCont } }", None),  # does not validate
        ("{ __schema { queryType { name } } }", None),  # introspection, off in production
        ("{ " + " ".join(f"a{n}: __typename" for n in range(20)) + " }", None),  # a limit
        ('mutation { cancelRun(id: "run_00000000000000000000") { run { id } } }', None),
        ('subscription { runStatus(id: "run_00000000000000000000") { status } }', None),
    ],
)
async def test_errors_come_from_the_view(
    both: LaneAndView, document: str, variables: dict[str, Any] | None
) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await both.left_to_the_view(
            {"query": document, "variables": variables}, headers={"Accept": accept}
        )
        assert response.json()["errors"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"query": "{ __typename }"', "application/json"),  # not JSON
        (b'[{"query": "{ __typename }"}]', "application/json"),  # a batch
        (b'{"query": 7}', "application/json"),
        (b'{"query": "{ __typename }", "operationName": "Nope"}', "application/json"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json"),
        (b'{"query": "{ __typename }"}', "text/plain"),
        (b'{"query": "{ __typename }"}', "application/json; charset=latin-1"),
        (b"{}", "application/json"),
    ],
)
async def test_bad_requests_come_from_the_view(
    both: LaneAndView, content: bytes, content_type: str
) -> None:
    response = await both.left_to_the_view(content=content, headers={"Content-Type": content_type})
    assert response.json()["errors"]


@pytest.mark.parametrize("accept", ["multipart/mixed", "text/event-stream"])
async def test_streaming_accept_headers_are_answered_alike(both: LaneAndView, accept: str) -> None:
    """The endpoint streams over websockets only; such requests get JSON, alike."""
    await both.compare({"query": "{ __typename }"}, headers={"Accept": accept})


async def test_persisted_queries_are_served_alike(both: LaneAndView) -> None:
    digest = hashlib.sha256(RUN_BY_ID.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    variables = {"id": "run_00000000000000000000"}
    unknown = await both.left_to_the_view({"extensions": persisted, "variables": variables})
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    await both.served_alike({"query": RUN_BY_ID, "extensions": persisted, "variables": variables})
    await both.served_alike({"extensions": persisted, "variables": variables})
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    mismatch = await both.left_to_the_view(
        {"query": RUN_BY_ID, "extensions": wrong, "variables": variables}
    )
    assert mismatch.status_code == 400


@pytest.mark.parametrize("turns", [True, False], ids=["turns", "no-turn"])
async def test_a_timeout_on_the_lane_is_answered_by_the_view_in_time(
    demo_database: Database, api_key: str, monkeypatch: pytest.MonkeyPatch, turns: bool
) -> None:
    """The view answers TIMEOUT at once: the lane spent the operation's time already. Without a
    turn of the loop between the feed's reads (SQLite's loop reader), no timer cancels the lane
    or the view: both check the query's time as it ends, and answer alike."""
    if not turns:
        monkeypatch.setattr(raw, "TURN_SECONDS", 3600.0)
    answers = []
    for fast_lane in (True, False):
        app = create_app(
            PRODUCTION.replace(fast_lane=fast_lane, execution_timeout_seconds=0.001), demo_database
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://runql.test",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as http:
            answers.append(
                await http.post(
                    "/graphql", json={"query": DOCUMENTS["feed"], "variables": {"first": 100}}
                )
            )
        lane = endpoint_of(app).lane
        assert lane is None or lane.served == 0
        if lane is not None:  # it did run, and ran out of time
            with pytest.raises(LaneTimeout):
                await lane.answer(
                    GraphQLRequestData(
                        query=DOCUMENTS["feed"],
                        variables={"first": 100},
                        operation_name=None,
                        extensions=None,
                        protocol="http",
                    ),
                    DEFAULT_ORG_ID,
                )
    on_lane, view = answers
    assert on_lane.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert (on_lane.status_code, on_lane.content) == (view.status_code, view.content)
    await _still_usable(demo_database)


async def _still_usable(database: Database) -> None:
    """The next operation runs as usual (and gives a read a cancelled one left running in
    aiosqlite's thread time to end before the test's event loop does)."""
    again = await GraphQLClient(database, PRODUCTION)(DOCUMENTS["feed"], {"first": 100})
    assert "errors" not in again


async def test_the_lane_is_off_in_development(demo_database: Database) -> None:
    """Development responses carry `extensions` (SQL statistics, the executor)."""
    app = create_app(PRODUCTION.replace(env=Environment.DEVELOPMENT), demo_database)
    assert endpoint_of(app).lane is None


async def test_a_client_that_leaves_mid_body_is_left_to_the_view(both: LaneAndView) -> None:
    """The part that came is valid JSON; the lane still answers only whole requests."""
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"query": "{ __typename }"}', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    served = both.served
    with contextlib.suppress(ClientDisconnect):
        await both.endpoint(scope, receive, send)
    assert both.served == served
    assert not sent


def _operation_samples(name: str) -> tuple[float, float, float]:
    labels = {"operation": name, "type": "query", "outcome": "success"}
    count = REGISTRY.get_sample_value("runql_graphql_operations_total", labels) or 0.0
    statements = (
        REGISTRY.get_sample_value("runql_graphql_operation_sql_statements_sum", {"operation": name})
        or 0.0
    )
    timed = (
        REGISTRY.get_sample_value(
            "runql_graphql_operation_duration_seconds_count", {"operation": name, "type": "query"}
        )
        or 0.0
    )
    return count, statements, timed


async def test_the_lane_records_the_operation_as_the_view_does(
    both: LaneAndView, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"query": DOCUMENTS["feed"], "variables": {"first": 5}}
    deltas, logged = [], []
    for client, on_lane in ((both.lane, True), (both.view, False)):
        before = _operation_samples("Feed")
        served = both.served
        with caplog.at_level(logging.INFO, logger="runql.access"):
            caplog.clear()
            response = await client.post("/graphql", json=payload)
        assert response.status_code == 200
        assert (both.served > served) is on_lane
        deltas.append([a - b for a, b in zip(_operation_samples("Feed"), before, strict=True)])
        [record] = [r for r in caplog.records if r.name == "runql.access"]
        fields = vars(record)
        logged.append((fields["operation"], fields["sql_statements"]))
    assert deltas[0] == deltas[1]
    assert deltas[0][0] == deltas[0][2] == 1
    assert deltas[0][1] >= 2
    assert logged[0] == logged[1]
    assert logged[0][0] == "Feed"
    assert logged[0][1] >= deltas[0][1]  # and the key's lookup


GENERATED = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@GENERATED
@given(data=st.data())
async def test_generated_operations_are_answered_alike(
    data: st.DataObject, both: LaneAndView, demo_ids: DemoIds
) -> None:
    operation = data.draw(operations(demo_ids.by_kind), label="operation")
    await both.compare({"query": operation.document, "variables": operation.variables})


@settings(GENERATED, max_examples=1)
@given(data=st.data())
async def test_the_lane_serves_most_generated_operations(
    data: st.DataObject, both: LaneAndView, demo_ids: DemoIds
) -> None:
    served = []
    for _ in range(40):
        operation = data.draw(operations(demo_ids.by_kind))
        answer = await both.compare({"query": operation.document, "variables": operation.variables})
        if "errors" not in answer.response.json():
            served.append(answer.served)
    assert len(served) >= 15
    assert served.count(True) >= 0.8 * len(served), served


async def test_the_view_keeps_a_deadline_the_lane_passes_on(demo_database: Database) -> None:
    """What the lane hands over on a timeout: the view's own timeout is 10 s, the deadline
    is now, so the operation is cancelled at once and says the timeout it had."""
    gql = GraphQLClient(demo_database, PRODUCTION)
    started = time.perf_counter()
    with deadline(asyncio.get_running_loop().time()):
        body = await gql(DOCUMENTS["feed"], {"first": 100})
    assert time.perf_counter() - started < 2
    assert body["errors"][0]["extensions"] == {"code": "TIMEOUT", "seconds": 10.0}
    await _still_usable(demo_database)


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        (RUN_BY_ID, {"id": "run_\x00"}, "id"),  # a declared variable
        (RUN_BY_ID, {"id": "run_\ud800"}, "id"),
        (RUN_BY_ID, {"id": "run_00000000000000000000", "extra": "\x00"}, "extra"),  # undeclared
        ('{ run(id: "run_\\u0000") { id } }', {}, "id"),  # a literal
    ],
)
async def test_unfit_text_is_refused_by_the_view_not_read_by_the_lane(
    both: LaneAndView, document: str, variables: dict[str, Any], field: str
) -> None:
    """runql.text's rule holds on the lane: such a request is the view's BAD_USER_INPUT."""
    content = json.dumps({"query": document, "variables": variables}).encode()  # escapes all
    refused = await both.left_to_the_view(
        content=content, headers={"Content-Type": "application/json"}
    )
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field


POINT_READS = {
    "run": "id status agentId threadId language metadata rawInputs createdAt completedAt"
    " cost { amount unit __typename } __typename",
    "agent": "id name kind createdAt archivedAt config __typename",
    "thread": "id agentId metadata createdAt updatedAt",
    "mgrp": "id status type threadId parentMessageGroupId metadata createdAt",
    "act": "id name type metadata createdAt",
}
ROOTS = {"run": "run", "agent": "agent", "thread": "thread", "mgrp": "messageGroup", "act": "actor"}


async def test_a_root_object_by_id_with_leaf_fields_is_a_point_read_served_alike(
    both: LaneAndView, demo_ids: DemoIds
) -> None:
    """run(id:), agent(id:), ... selecting only leaves: one statement, the view's bytes; an id
    not there is null; a refused id goes to the view."""
    assert both.endpoint.lane is not None
    for kind, fields in POINT_READS.items():
        document = f"query P($id: ID!) {{ it: {ROOTS[kind]}(id: $id) {{ {fields} }} }}"
        for id in demo_ids.by_kind[kind][:3]:
            before = both.endpoint.lane.point_reads
            body = await both.served_alike({"query": document, "variables": {"id": id}})
            assert body["data"]["it"]["id"] == id
            assert both.endpoint.lane.point_reads == before + 1
        missing = f"{kind}_{'0' * 20}"
        body = await both.served_alike({"query": document, "variables": {"id": missing}})
        assert body == {"data": {"it": None}}
        wrong = demo_ids.by_kind["msg"][0]  # an id of another kind: the resolver's error
        before = both.endpoint.lane.point_reads
        await both.left_to_the_view({"query": document, "variables": {"id": wrong}})
        assert both.endpoint.lane.point_reads == before


async def test_a_root_object_with_a_link_below_is_no_point_read(
    both: LaneAndView, demo_ids: DemoIds
) -> None:
    assert both.endpoint.lane is not None
    before = both.endpoint.lane.point_reads
    await both.served_alike(
        {
            "query": "query($id: ID!) { run(id: $id) { id agent { id name } } }",
            "variables": {"id": demo_ids.by_kind["run"][0]},
        }
    )
    assert both.endpoint.lane.point_reads == before


def _request(document: str, variables: dict[str, Any]) -> GraphQLRequestData:
    return GraphQLRequestData(
        query=document, variables=variables, operation_name=None, extensions=None, protocol="http"
    )


async def test_a_point_read_on_sqlite_is_answered_in_one_turn_of_the_loop(
    both: LaneAndView, demo_ids: DemoIds, demo_database: Database
) -> None:
    """On a SQLite file the loop's reader reads a point read at once: the lane answers it
    without handing the loop to anything else (no task switch, no timer)."""
    if sqlite_file(str(demo_database.engine.url)) is None:
        pytest.skip("the loop's reader is a SQLite file's")
    lane = both.endpoint.lane
    assert lane is not None
    request = _request(RUN_BY_ID, {"id": demo_ids.by_kind["run"][0]})
    assert await lane.answer(request, DEFAULT_ORG_ID) is not None  # prepared, planned, opened
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    before = lane.point_reads
    body = await lane.answer(request, DEFAULT_ORG_ID)
    assert not turned
    assert body is not None
    assert json.loads(body)["data"]["run"]["id"] == demo_ids.by_kind["run"][0]
    assert lane.point_reads == before + 1


async def test_a_point_read_over_the_loop_budget_is_read_on_the_thread_as_one_statement(
    both: LaneAndView, demo_ids: DemoIds, demo_database: Database
) -> None:
    """A point read the loop's reader interrupts (over its budget, or busy) is read again on
    the reader's thread: the same answer, one statement in the metrics, as the view's."""
    if sqlite_file(str(demo_database.engine.url)) is None:
        pytest.skip("the loop's reader is a SQLite file's")
    document = "query PointOnThread($id: ID!) { run(id: $id) { id status } }"
    payload = {"query": document, "variables": {"id": demo_ids.by_kind["run"][1]}}
    await both.served_alike(payload)  # the reader's connection is open
    reader = raw._source(demo_database)
    assert isinstance(reader, raw._SQLiteReader)
    assert reader._loop_connection is not None
    threads: list[str] = []
    original = raw._fetch_all

    def on_thread(connection: sqlite3.Connection, sql: str, args: list[Any]) -> list[Any]:
        threads.append(threading.current_thread().name)
        return original(connection, sql, args)

    lane = both.endpoint.lane
    assert lane is not None
    reader._loop_connection.set_progress_handler(lambda: 1, 1)  # every read is interrupted
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(raw, "_fetch_all", on_thread)
            deltas = []
            for client in (both.lane, both.view):
                before = _operation_samples("PointOnThread")
                served, points = lane.served, lane.point_reads
                response = await client.post("/graphql", json=payload)
                assert response.status_code == 200
                on_lane = client is both.lane
                assert (lane.served, lane.point_reads) == (served + on_lane, points + on_lane)
                after = _operation_samples("PointOnThread")
                deltas.append([a - b for a, b in zip(after, before, strict=True)])
    finally:
        reader._loop_connection.set_progress_handler(reader._over_budget, raw.PROGRESS_STEPS)
    assert threads
    assert threads[0] != threading.current_thread().name
    assert deltas[0] == deltas[1] == [1.0, 1.0, 1.0]
