"""A property: whatever body arrives at POST /graphql or POST /runs (random bytes, invalid
UTF-8, keys twice, nesting from 1 to 3,000 levels, NaN), the real app answers below 500, every
error body is JSON with a code, and a refused write writes nothing."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from runql.app import create_app
from runql.settings import Settings
from runql.storage.database import Database
from tests.rest.conftest import demo_agent, row_counts

SETTINGS = settings(
    max_examples=40,
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
CREATE_AGENT = "mutation($input: CreateAgentInput!) { createAgent(input: $input) { agent { id } } }"
# Unicode the stores take (lone surrogates and control characters are another rule's)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@pytest.fixture
async def raw_http(
    demo_database: Database, settings: Settings, api_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, its exceptions answered as the server would (a 500) rather than
    raised into the test."""
    transport = httpx.ASGITransport(
        app=create_app(settings, demo_database), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:
        yield client


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@st.composite
def _value(draw: st.DrawFn) -> bytes:
    """A JSON value, perhaps deep, perhaps with a key twice, perhaps not JSON at all."""
    kind = draw(st.sampled_from(["text", "deep", "duplicate", "nan", "bad-utf8"]))
    if kind == "text":
        return orjson.dumps(draw(TEXT))
    if kind == "deep":
        return _nested(draw(st.one_of(st.integers(1, 80), st.integers(900, 3000))))
    if kind == "duplicate":
        key = orjson.dumps(draw(TEXT))
        return b"{" + key + b": 1, " + key + b": 2}"
    if kind == "nan":
        return draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
    return b'"' + draw(st.binary(min_size=1, max_size=8)) + b'\xff"'


def _graphql_body(name: bytes, metadata: bytes) -> bytes:
    return (
        b'{"query": ' + orjson.dumps(CREATE_AGENT) + b', "variables": {"input": '
        b'{"name": ' + name + b', "kind": "echo", "config": ' + metadata + b"}}}"
    )


def _run_body(agent_id: str, content: bytes, metadata: bytes) -> bytes:
    return (
        b'{"agent_id": '
        + orjson.dumps(agent_id)
        + b', "content": '
        + content
        + b', "metadata": {"note": '
        + metadata
        + b"}}"
    )


@st.composite
def _bodies(draw: st.DrawFn, agent_id: str) -> tuple[str, bytes]:
    path = draw(st.sampled_from(["/graphql", "/runs"]))
    if draw(st.integers(0, 4)) == 0:
        return path, draw(st.binary(max_size=200))
    first, second = draw(_value()), draw(_value())
    if path == "/graphql":
        return path, _graphql_body(first, b'{"x": ' + second + b"}")
    return path, _run_body(agent_id, first, second)


def _refused(path: str, response: httpx.Response) -> bool:
    """A 4xx, or (GraphQL answers some refusals with 200) errors and no agent made."""
    if response.status_code >= 400 or path != "/graphql":
        return response.status_code >= 400
    body = response.json()
    return "errors" in body and not (body.get("data") or {}).get("createAgent")


def _assert_json_error(path: str, response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    if path == "/graphql":
        assert body["errors"], body
        assert all(error["extensions"]["code"] for error in body["errors"]), body
    else:
        assert (body["status"], body["code"]) == (response.status_code, "bad_user_input"), body


@SETTINGS
@given(data=st.data())
async def test_no_body_breaks_the_app_or_writes_when_refused(
    data: st.DataObject,
    raw_http: httpx.AsyncClient,
    demo_database: Database,
) -> None:
    echo = await demo_agent(demo_database, "echo")
    path, body = data.draw(_bodies(echo.id), label="body")
    before = await row_counts(demo_database)

    response = await raw_http.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code < 500, response.text
    if _refused(path, response):
        _assert_json_error(path, response)
        assert await row_counts(demo_database) == before
