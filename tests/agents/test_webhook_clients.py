"""One HTTP client per webhook agent: its runs share its connections, an updateAgent brings a
new client (the old one closed), stopping the executor closes them, the pool is bounded and a
cancelled call closes its request at once. A real uvicorn server on a loopback port counts the
TCP connections it sees."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runql.agents import catalog
from runql.agents.egress import EgressPolicy
from runql.agents.instances import AgentInstances
from runql.agents.protocol import AgentReply, AgentRequest, Part, ReplyMessage, Turn
from runql.agents.registry import AgentRegistry
from runql.agents.webhook import WebhookKind, wire
from runql.agents.webhook.client import POOL_LIMITS, ssl_context
from runql.enums import ActorType, RunStatus
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import LOOPBACK
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID
from tests.agents.loopback import serving
from tests.lifecycle.conftest import new_run, reload

KIND = WebhookKind(EgressPolicy(LOOPBACK))  # the test's server is on loopback


class Receiver:
    """A webhook's far end: which client port each request came from, and how many TCP
    connections are open. With `hang`, requests wait until their client goes away."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.bodies: list[Any] = []
        self.hang = False
        self.disconnected = asyncio.Event()
        self.server: uvicorn.Server | None = None
        self.url = ""

    @property
    def connections(self) -> int:
        assert self.server is not None
        return len(self.server.server_state.connections)

    async def handle(self, request: Request) -> Response:
        assert request.client is not None
        self.ports.append(request.client.port)
        self.bodies.append(json.loads(await request.body()))
        while self.hang:
            if await request.is_disconnected():
                self.disconnected.set()
                return Response(status_code=499)
            await asyncio.sleep(0.01)
        return JSONResponse({"text": f"answer {len(self.ports)}"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(receiver.handle, timeout_keep_alive=30) as (server, port):
        receiver.server = server
        receiver.url = f"http://127.0.0.1:{port}/hook"
        try:
            yield receiver
        finally:
            receiver.hang = False  # before the server stops: a hanging request ends


async def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)


async def _finished(database: Database, run_id: str) -> RunStatus:
    async with asyncio.timeout(10):
        unfinished = (RunStatus.PENDING, RunStatus.RUNNING)
        while (status := (await reload(database, run_id)).status) in unfinished:  # noqa: ASYNC110 (a client polls)
            await asyncio.sleep(0.02)
    return RunStatus(status)


def _request(run_id: str = "run_1") -> AgentRequest:
    return AgentRequest(
        run_id, "agent_1", "thread_1", Turn(ActorType.USER, "Ada", (Part("hi"),)), ()
    )


async def test_runs_share_a_client_until_the_agent_changes_and_stopping_closes_it(
    database: Database,
    receiver: Receiver,
) -> None:
    registry = AgentRegistry([KIND])
    agent = await catalog.create_agent(
        database,
        registry,
        DEFAULT_ORG_ID,
        name="Hook",
        kind="webhook",
        config={"url": receiver.url},
    )
    executor = Executor(database, registry, ExecutorConfig(concurrency=1, poll_seconds=0.05))
    await executor.start()
    try:
        for _ in range(2):
            run = await new_run(database, agent)
            assert await _finished(database, run.id) == RunStatus.SUCCESS
        assert receiver.ports[0] == receiver.ports[1]  # one TCP connection, reused
        assert receiver.connections == 1

        await catalog.update_agent(
            database,
            registry,
            DEFAULT_ORG_ID,
            agent.id,
            config={"url": receiver.url, "timeout_s": 10},
            config_given=True,
        )
        run = await new_run(database, agent)
        assert await _finished(database, run.id) == RunStatus.SUCCESS
        assert receiver.ports[2] != receiver.ports[1]  # a new client, a new connection
        await _eventually(lambda: receiver.connections == 1)  # the old client closed it
    finally:
        await executor.stop()
    await _eventually(lambda: receiver.connections == 0)  # stopping closed the last one


async def test_the_pool_is_bounded(receiver: Receiver) -> None:
    receiver.hang = True
    limit = POOL_LIMITS.max_connections
    assert limit is not None
    calls = limit + 4
    async with contextlib.aclosing(KIND.create({"url": receiver.url, "retries": 0})) as agent:
        runs = [asyncio.create_task(agent.run(_request(f"run_{i}"))) for i in range(calls)]
        # A thousand connections take a while to open on a loaded machine.
        await _eventually(lambda: len(receiver.ports) == limit, seconds=60)
        await asyncio.sleep(0.3)  # the others wait for a free connection
        assert len(receiver.ports) == receiver.connections == limit
        receiver.hang = False
        replies = await asyncio.gather(*runs)
    assert len(replies) == len(receiver.ports) == calls


BURST = 100  # more than httpcore's keep-alive count (64) used to keep


async def _burst(agent: Any, receiver: Receiver, first: int) -> None:
    """BURST runs held open together, then answered: each had a connection of its own."""
    receiver.hang = True
    runs = [asyncio.create_task(agent.run(_request(f"run_{first + i}"))) for i in range(BURST)]
    await _eventually(lambda: len(receiver.ports) == first + BURST, seconds=30)
    receiver.hang = False
    await asyncio.gather(*runs)


async def test_a_burst_of_runs_reuses_the_connections_of_the_one_before(
    receiver: Receiver,
) -> None:
    async with contextlib.aclosing(KIND.create({"url": receiver.url, "retries": 0})) as agent:
        await _burst(agent, receiver, 0)
        await _burst(agent, receiver, BURST)
    first, second = receiver.ports[:BURST], receiver.ports[BURST:]
    assert len(set(first)) == BURST
    assert set(second) == set(first)  # no new connection, so no new check of the address


async def test_a_connection_its_server_closed_is_not_reused() -> None:
    receiver = Receiver()
    async with serving(receiver.handle, timeout_keep_alive=1) as (server, port):
        receiver.server = server
        receiver.url = f"http://127.0.0.1:{port}/hook"
        async with contextlib.aclosing(KIND.create({"url": receiver.url, "retries": 0})) as agent:
            await agent.run(_request("run_1"))
            await _eventually(lambda: receiver.connections == 0)  # the server closed it
            await agent.run(_request("run_2"))  # on a new connection, not the closed one
    assert len(set(receiver.ports)) == 2


async def test_a_request_cancelled_while_waiting_for_a_connection_leaves_the_pool_whole(
    receiver: Receiver,
) -> None:
    transport = EgressPolicy(LOOPBACK).transport(ssl_context(), httpx.Limits(max_connections=2))
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        receiver.hang = True
        posts = [asyncio.create_task(client.post(receiver.url, json={"n": n})) for n in range(3)]
        await _eventually(lambda: len(receiver.ports) == 2)
        posts[2].cancel()  # it waits for a connection: none is free
        await asyncio.gather(posts[2], return_exceptions=True)
        receiver.hang = False
        assert [r.status_code for r in await asyncio.gather(*posts[:2])] == [200, 200]
        again = await asyncio.gather(*(client.post(receiver.url, json={"n": n}) for n in range(2)))
    assert [r.status_code for r in again] == [200, 200]
    assert set(receiver.ports[2:]) == set(receiver.ports[:2])  # the two connections, reused


async def test_a_cancelled_run_closes_its_request_at_once(receiver: Receiver) -> None:
    receiver.hang = True
    async with contextlib.aclosing(KIND.create({"url": receiver.url, "timeout_s": 30})) as agent:
        work = asyncio.create_task(agent.run(_request()))
        await _eventually(lambda: len(receiver.ports) == 1)
        work.cancel()
        async with asyncio.timeout(1):
            await receiver.disconnected.wait()
        assert work.cancelled()
        receiver.hang = False
        reply = await agent.run(_request("run_2"))  # the client still serves its agent
    assert reply.messages[0].parts[0].text == "answer 2"


class Counted:
    """A third party's agent that holds a resource: it counts being closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def run(self, request: AgentRequest) -> AgentReply:
        return AgentReply(messages=(ReplyMessage((Part("ok"),)),))

    async def aclose(self) -> None:
        self.closed += 1


class CountedKind:
    name = "counted"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config)

    def create(self, config: Mapping[str, Any]) -> Counted:
        return Counted()


async def test_a_replaced_agent_is_closed_after_its_last_run() -> None:
    instances = AgentInstances(AgentRegistry([CountedKind()]))
    old = await instances.take("agent_1", 1, "counted", {})
    assert await instances.take("agent_1", 1, "counted", {}) is old  # shared
    await instances.give_back(old)
    new = await instances.take("agent_1", 2, "counted", {})  # updated while old still runs
    assert isinstance(old, Counted)
    assert isinstance(new, Counted)
    assert new is not old
    assert old.closed == 0
    await instances.give_back(old)
    assert old.closed == 1
    other = await instances.take("agent_2", 1, "counted", {})
    await instances.give_back(new)
    await instances.give_back(other)
    assert new.closed == 0
    await instances.close()
    assert (old.closed, new.closed, getattr(other, "closed", None)) == (1, 1, 1)


async def test_the_wire_schemas_describe_what_is_sent_and_accepted(receiver: Receiver) -> None:
    schemas = wire.schemas()
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    async with contextlib.aclosing(KIND.create({"url": receiver.url})) as agent:
        await agent.run(_request())
    jsonschema.validate(receiver.bodies[0], schemas["request"])
    jsonschema.validate({"text": "hi"}, schemas["reply"])
    jsonschema.validate(
        {
            "messages": [{"parts": [{"text": "hi"}]}],
            "attached_items": None,
            "cost": {"amount": 0, "unit": "usd"},
        },
        schemas["reply"],
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"messages": [{"parts": [{"type": "html", "text": "x"}]}]}, schemas["reply"]
        )
    jsonschema.validate({"error": {"code": "busy", "message": "later"}}, schemas["refusal"])
