"""Egress checks: which addresses agents may reach, when configs are saved and on connecting."""

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import JSONResponse

from runql.agents import catalog
from runql.agents.egress import EgressPolicy, address_class
from runql.agents.protocol import AgentError, AgentRequest, Part, Turn
from runql.agents.registry import AgentRegistry
from runql.agents.webhook import WebhookKind
from runql.enums import ActorType, RunStatus
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import Environment, Settings, SettingsError
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, RunErrorRow
from tests.agents.loopback import serving
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import new_run, reload, row_counts

LOOPBACK = EgressPolicy((ipaddress.ip_network("127.0.0.0/8"),))
PRODUCTION = Settings(env=Environment.PRODUCTION, workers=0)

ADDRESSES = [
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("2606:4700:4700::1111", None),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("172.32.0.1", None),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("fc00::1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "special-purpose"),
    ("198.18.0.1", "special-purpose"),
    ("0.1.2.3", "special-purpose"),
    ("2001:db8::1", "special-purpose"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:8.8.8.8", None),
    ("::127.0.0.1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a9fe:a9fe::1", "link-local"),
    ("64:ff9b::a00:1", "private"),
    ("64:ff9b::808:808", None),
]


@pytest.mark.parametrize(("address", "expected"), ADDRESSES)
def test_address_classes(address: str, expected: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected


def test_allowed_networks_let_their_addresses_pass() -> None:
    LOOPBACK.check("localhost", ipaddress.ip_address("127.0.0.1"))
    LOOPBACK.check("::ffff:127.0.0.1", ipaddress.ip_address("::ffff:127.0.0.1"))
    with pytest.raises(Exception, match=r"10\.0\.0\.1 is a private address"):
        LOOPBACK.check("10.0.0.1", ipaddress.ip_address("10.0.0.1"))
    with pytest.raises(Exception, match=r"::1 is a loopback address"):
        LOOPBACK.check("::1", ipaddress.ip_address("::1"))


def test_the_setting_is_checked_and_development_allows_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNQL_ENV", "production")
    assert Settings.from_env().egress_allowed == ()
    monkeypatch.setenv("RUNQL_ENV", "development")
    assert {str(n) for n in Settings.from_env().egress_allowed} == {"127.0.0.0/8", "::1/128"}
    monkeypatch.setenv("RUNQL_EGRESS_ALLOWED_CIDRS", " 10.0.0.0/8, fd00::/8 ")
    assert [str(n) for n in Settings.from_env().egress_allowed] == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("RUNQL_EGRESS_ALLOWED_CIDRS", "")
    assert Settings.from_env().egress_allowed == ()
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "localhost", "10/8/8"):
        monkeypatch.setenv("RUNQL_EGRESS_ALLOWED_CIDRS", f"127.0.0.0/8,{bad}")
        with pytest.raises(SettingsError, match="RUNQL_EGRESS_ALLOWED_CIDRS"):
            Settings.from_env()


# --- on connecting, against a real loopback server ---------------------------------------


class Hook:
    def __init__(self) -> None:
        self.calls = 0
        self.port = 0

    async def handle(self, request: Request) -> JSONResponse:
        self.calls += 1
        return JSONResponse({"text": "served"})


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    hook = Hook()
    async with serving(hook.handle) as (_, hook.port):
        yield hook


def _request() -> AgentRequest:
    return AgentRequest(
        "run_1", "agent_1", "thread_1", Turn(ActorType.USER, "Ada", (Part("hi"),)), ()
    )


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names this test's DNS maps to addresses; other names resolve as usual."""
    names: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> Any:
        if host in names:
            return await real(names[host], port, **kwargs)
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return names


async def test_a_name_that_resolves_to_loopback_is_refused_on_connecting(hook: Hook) -> None:
    agent = WebhookKind(EgressPolicy()).create(
        {"url": f"http://localhost:{hook.port}/hook", "retries": 2}
    )
    with pytest.raises(AgentError) as refused:
        async with contextlib.aclosing(agent):
            await agent.run(_request())
    assert refused.value.code == "egress_refused"
    assert "localhost resolves to" in refused.value.message
    assert "a loopback address" in refused.value.message
    assert hook.calls == 0


async def test_an_allowed_network_is_served(hook: Hook) -> None:
    agent = WebhookKind(LOOPBACK).create({"url": f"http://localhost:{hook.port}/hook"})
    async with contextlib.aclosing(agent):
        reply = await agent.run(_request())
    assert reply.messages[0].parts[0].text == "served"
    assert hook.calls == 1


async def test_a_name_that_rebinds_after_the_check_is_refused_on_connecting(
    hook: Hook,
    resolver: dict[str, str],
) -> None:
    kind = WebhookKind(EgressPolicy())
    config = kind.validate_config({"url": f"http://hooks.rebind.test:{hook.port}/hook"})
    resolver["hooks.rebind.test"] = "8.8.8.8"
    await kind.check_egress(config)  # a global address when the config is saved
    resolver["hooks.rebind.test"] = "127.0.0.1"
    with pytest.raises(AgentError) as refused:
        async with contextlib.aclosing(kind.create(config)) as agent:
            await agent.run(_request())
    assert refused.value.code == "egress_refused"
    assert "hooks.rebind.test resolves to 127.0.0.1, a loopback address" in refused.value.message
    assert hook.calls == 0


async def test_a_refused_run_ends_in_error_with_its_own_code(
    database: Database,
    hook: Hook,
) -> None:
    allowed = AgentRegistry([WebhookKind(LOOPBACK)])
    agent = await catalog.create_agent(
        database,
        allowed,
        DEFAULT_ORG_ID,
        name="Hook",
        kind="webhook",
        config={"url": f"http://127.0.0.1:{hook.port}/hook"},
    )
    run = await new_run(database, agent)
    production = AgentRegistry([WebhookKind(EgressPolicy())])
    executor = Executor(database, production, ExecutorConfig(concurrency=1))
    assert await executor.run_once()
    await executor.agents.close()
    assert (await reload(database, run.id)).status == RunStatus.ERROR
    async with database.read() as session:
        (error,) = (
            (await session.execute(select(RunErrorRow).where(col(RunErrorRow.run_id) == run.id)))
            .scalars()
            .all()
        )
    assert error.code == "egress_refused"
    assert "127.0.0.1 is a loopback address" in error.message
    assert hook.calls == 0


# --- createAgent / updateAgent over GraphQL in production --------------------------------

CREATE = """mutation($config: JSON) { createAgent(input: {name: "Hook", kind: "webhook",
  config: $config}) { agent { id config } } }"""
UPDATE = """mutation($id: ID!, $config: JSON) { updateAgent(input: {id: $id, config: $config})
  { agent { id config } } }"""

REFUSED_URLS = [
    ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:9/hook", "localhost resolves to"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
    ("http://[::1]:9/hook", "::1 is a loopback address"),
    ("http://[::ffff:192.168.0.1]/hook", "a private address"),
    ("http://[fe80::1]/hook", "a link-local address"),
    ("http://0.0.0.0:9/hook", "0.0.0.0 is an unspecified address"),
    ("https://224.0.0.1/hook", "a multicast address"),
    ("http://100.64.1.1/hook", "a carrier-grade NAT address"),
]


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None or not any(body["data"].values()), body
    errors: list[dict[str, Any]] = body["errors"]
    (error,) = errors
    return error


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
async def test_create_agent_refuses_internal_addresses_in_production(
    database: Database,
    url: str,
    reason: str,
) -> None:
    gql = GraphQLClient(database, PRODUCTION)
    before = await row_counts(database)
    error = _error(await gql(CREATE, {"config": {"url": url}}))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "config"
    assert reason in error["message"]
    assert await row_counts(database) == before


async def test_update_agent_refuses_internal_addresses_in_production(database: Database) -> None:
    gql = GraphQLClient(database, PRODUCTION)
    created = await gql(CREATE, {"config": {"url": "https://8.8.8.8/hook"}})
    assert "errors" not in created, created
    agent = created["data"]["createAgent"]["agent"]
    before = await row_counts(database)
    error = _error(
        await gql(UPDATE, {"id": agent["id"], "config": {"url": "http://169.254.169.254/x"}})
    )
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_USER_INPUT",
        "config",
    )
    assert "169.254.169.254 is a link-local address" in error["message"]
    assert await row_counts(database) == before
    read = await gql("query($id: ID!) { agent(id: $id) { config } }", {"id": agent["id"]})
    assert read["data"]["agent"]["config"]["url"] == "https://8.8.8.8/hook"


async def test_the_setting_allows_its_networks_and_development_allows_loopback(
    database: Database,
) -> None:
    allowed = Settings(
        env=Environment.PRODUCTION,
        workers=0,
        egress_allowed_cidrs=(ipaddress.ip_network("10.0.0.0/8"),),
    )
    body = await GraphQLClient(database, allowed)(CREATE, {"config": {"url": "http://10.0.0.5/"}})
    assert "errors" not in body, body
    development = Settings(env=Environment.DEVELOPMENT, workers=0)
    body = await GraphQLClient(database, development)(
        CREATE, {"config": {"url": "http://127.0.0.1:9/hook"}}
    )
    assert "errors" not in body, body
    refused = _error(
        await GraphQLClient(database, development)(CREATE, {"config": {"url": "http://10.0.0.5/"}})
    )
    assert "10.0.0.5 is a private address" in refused["message"]


async def test_a_name_that_does_not_resolve_is_accepted_and_checked_on_connecting(
    database: Database,
) -> None:
    body = await GraphQLClient(database, PRODUCTION)(
        CREATE, {"config": {"url": "https://hooks.nowhere.invalid/run"}}
    )
    assert "errors" not in body, body
