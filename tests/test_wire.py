"""The wire (runql/wire.py) behind runql's HTTP protocol (runql/protocol.py), on a real uvicorn
over loopback: a planned POST is answered below ASGI with what the ASGI path would send, and
everything else (other requests, refusals, what the lane declines after admitting) reaches the
app as before, in order, with one rate-limit token and one request id per request."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette

from runql.app import create_app
from runql.auth.keys import create_key, revoke_key
from runql.protocol import RunqlProtocol
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.wire import Wire

PRODUCTION = Settings(env=Environment.PRODUCTION, workers=0, rate_limit_burst=100_000)
RUN_BY_ID = "query($id: ID!) { run(id: $id) { id status } }"
Answer = tuple[int, dict[str, str], bytes]


@asynccontextmanager
async def served(
    database: Database, settings: Settings, protocol: Any = RunqlProtocol
) -> AsyncIterator[tuple[int, Starlette]]:
    """The app on uvicorn with `protocol`, on a loopback port bound here."""
    url = database.engine.url.render_as_string(hide_password=False)
    app = create_app(settings.replace(database_url=url), database)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=protocol)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1], app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()


def post(
    body: object, key: str, *extra: tuple[str, str], path: str = "/graphql", raw: bytes = b""
) -> bytes:
    payload = raw or orjson.dumps(body)
    headers = [
        ("Host", "runql.test"),
        ("Authorization", f"Bearer {key}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        *extra,
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + payload


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def exchange(port: int, *requests: bytes, together: bool = False) -> list[Answer]:
    """The answers to `requests` on one connection: each sent after the last answer, or all
    in one write (`together`: pipelined)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        if together:
            writer.write(b"".join(requests))
        for request in requests:
            if not together:
                writer.write(request)
            answers.append(await asyncio.wait_for(read_answer(reader), 10))
    finally:
        writer.close()
    return answers


async def run_ids(database: Database, count: int) -> list[str]:
    async with database.engine.connect() as connection:
        found = await connection.execute(
            text("SELECT id FROM runs ORDER BY id LIMIT :n"), {"n": count}
        )
        return [row[0] for row in found]


async def warm(port: int, key: str) -> None:
    """A first request with the key: the app reads it, and the principal cache holds it (the
    wire answers only for keys the cache holds)."""
    [(status, _, _)] = await exchange(port, post({"query": "{ __typename }"}, key))
    assert status == 200


def wire_of(app: Starlette) -> Wire:
    wire = app.state.wire
    assert isinstance(wire, Wire)
    return wire


def without_date(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "date"}


async def test_a_planned_query_is_answered_below_asgi_as_the_app_answers_it(
    demo_database: Database, api_key: str
) -> None:
    [run_id] = await run_ids(demo_database, 1)
    request = post(
        {"query": RUN_BY_ID, "variables": {"id": run_id}}, api_key, ("X-Request-ID", "r-1")
    )
    answers = {}
    for protocol in (RunqlProtocol, "httptools"):
        async with served(demo_database, PRODUCTION, protocol) as (port, app):
            await warm(port, api_key)
            [answers[protocol]] = await exchange(port, request)
            answered = wire_of(app).answered
        assert answered == (1 if protocol is RunqlProtocol else 0)

    status, headers, answer = answers[RunqlProtocol]
    assert status == 200
    assert orjson.loads(answer)["data"]["run"]["id"] == run_id
    assert headers["x-request-id"] == "r-1"
    assert (status, without_date(headers), answer) == (
        answers["httptools"][0],
        without_date(answers["httptools"][1]),
        answers["httptools"][2],
    )


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    demo_database: Database, api_key: str
) -> None:
    ids = await run_ids(demo_database, 3)
    planned = [post({"query": RUN_BY_ID, "variables": {"id": i}}, api_key) for i in ids]
    health = b"GET /healthz HTTP/1.1\r\nHost: runql.test\r\n\r\n"
    requests = [planned[0], health, planned[1], planned[2]]
    async with served(demo_database, PRODUCTION) as (port, app):
        await warm(port, api_key)
        one_by_one = await exchange(port, *requests)
        together = await exchange(port, *requests, together=True)
        answered = wire_of(app).answered

    for answers in (one_by_one, together):
        assert [status for status, _, _ in answers] == [200, 200, 200, 200]
        runs = [orjson.loads(answers[i][2])["data"]["run"]["id"] for i in (0, 2, 3)]
        assert runs == ids
        assert b"run" not in answers[1][2]  # the health check's own answer, in its place
    assert answered == 6


async def test_refusals_and_the_lane_s_declines_reach_the_app_with_one_token_each(
    demo_database: Database, api_key: str
) -> None:
    """Burst 4, one taken by the first request (whose key the app reads): a request the lane
    declines after the wire admitted it (an id of another kind, which the view reports) takes
    one token, as a planned one and the view's do, and keeps the request id it came with; the
    fifth request is refused by the edge."""
    [run_id] = await run_ids(demo_database, 1)
    settings = PRODUCTION.replace(rate_limit_burst=4, rate_limit_per_second=0.001)
    requests = [
        post({"query": RUN_BY_ID, "variables": {"id": "agt_x"}}, api_key, ("X-Request-ID", "d-1")),
        post({"query": RUN_BY_ID, "variables": {"id": run_id}}, api_key),
        post({"query": "{ __typename }"}, api_key),
        post({"query": RUN_BY_ID, "variables": {"id": run_id}}, api_key),
    ]
    async with served(demo_database, settings) as (port, app):
        unknown = await exchange(port, post({"query": "{ __typename }"}, "runql_sk_unknown"))
        await warm(port, api_key)
        answers = await exchange(port, *requests)
        answered = wire_of(app).answered

    assert [status for status, _, _ in unknown] == [401]
    declined, planned, typename, refused = answers
    assert declined[1]["x-request-id"] == "d-1"
    assert orjson.loads(declined[2])["errors"]  # the view's error for an id of another kind
    assert planned[0] == 200
    assert orjson.loads(planned[2])["data"]["run"]["id"] == run_id
    assert orjson.loads(typename[2]) == {"data": {"__typename": "Query"}}
    assert refused[0] == 429
    assert answered == 2  # the run and __typename (the lane plans both); not the declined one


@pytest.mark.parametrize("case", ["expect-continue", "large-body", "connection-close"])
async def test_requests_the_wire_does_not_take_whole_are_answered_alike(
    demo_database: Database, api_key: str, case: str
) -> None:
    [run_id] = await run_ids(demo_database, 1)
    body: dict[str, Any] = {"query": RUN_BY_ID, "variables": {"id": run_id}}
    extra: list[tuple[str, str]] = []
    if case == "large-body":
        body["extensions"] = {"padding": "x" * 100_000}  # over uvicorn's read buffer
    elif case == "connection-close":
        extra.append(("Connection", "close"))
    settings = PRODUCTION.replace(max_body_bytes=1_000_000)
    async with served(demo_database, settings) as (port, app):
        await warm(port, api_key)
        if case == "expect-continue":
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = post(body, api_key, ("Expect", "100-continue"))
            head, _, payload = request.partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == (
                b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(payload)
            status, headers, answer = await asyncio.wait_for(read_answer(reader), 10)
            writer.close()
        else:
            [(status, headers, answer)] = await exchange(port, post(body, api_key, *extra))
        answered = wire_of(app).answered

    assert status == 200
    assert orjson.loads(answer)["data"]["run"]["id"] == run_id
    if case == "connection-close":
        assert headers["connection"] == "close"
        assert answered == 1
    else:
        assert answered == 0  # the ASGI path answered


async def test_the_wire_s_requests_are_counted_and_logged_as_the_app_logs_them(
    demo_database: Database, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    [run_id] = await run_ids(demo_database, 1)
    named = "query RunCard($id: ID!) { run(id: $id) { id status } }"
    request = post(
        {"query": named, "variables": {"id": run_id}},
        api_key,
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Request-ID", "fwd-1"),
    )
    caplog.set_level("INFO", logger="runql.access")
    metrics = b"GET /metrics HTTP/1.1\r\nHost: runql.test\r\n\r\n"
    async with served(demo_database, PRODUCTION) as (port, app):
        await warm(port, api_key)
        before = await exchange(port, metrics)
        await exchange(port, request, request)
        after = await exchange(port, metrics)
        answered = wire_of(app).answered

    assert answered == 2
    lines = [vars(r) for r in caplog.records if getattr(r, "request_id", None) == "fwd-1"]
    assert [
        (r["status"], r["client"], r["path"], r["operation"], r["sql_statements"]) for r in lines
    ] == [(200, "203.0.113.7", "/graphql", "RunCard", 1)] * 2  # read at once or awaited
    assert served_ok(after[0][2]) - served_ok(before[0][2]) == 2


def served_ok(exposition: bytes) -> float:
    """runql_http_requests_total of POST /graphql answered 200."""
    for line in exposition.decode().splitlines():
        if (
            line.startswith("runql_http_requests_total")
            and 'route="/graphql"' in line
            and 'status="200"' in line
            and 'method="POST"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_key_revoked_in_this_process_is_refused_on_the_wire_s_next_request(
    demo_database: Database,
) -> None:
    key = await create_key(demo_database, "doomed")
    [run_id] = await run_ids(demo_database, 1)
    request = post({"query": RUN_BY_ID, "variables": {"id": run_id}}, key.secret)
    async with served(demo_database, PRODUCTION) as (port, app):
        await warm(port, key.secret)
        [(served_first, _, _)] = await exchange(port, request)
        answered = wire_of(app).answered
        await revoke_key(demo_database, key.row.id, app.state.revocations)
        [(after, _, _)] = await exchange(port, request)

    assert (served_first, answered) == (200, 1)
    assert after == 401
