"""The request body cap: 413 PAYLOAD_TOO_LARGE, declared or streamed, and nothing runs."""

from collections.abc import AsyncIterator

import orjson
from starlette.types import Message

from runql.app import create_app
from runql.settings import Settings
from runql.storage.database import Database
from tests.hardening.conftest import MakeClient, codes, settings_with

QUERY = "{ runs(first: 1) { totalCount } }"


def _padded(size: int) -> bytes:
    """A valid JSON request of `size` bytes: the query, then spaces."""
    body = orjson.dumps({"query": QUERY})
    return body + b" " * (size - len(body))


async def _chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_default_cap_is_4_mib() -> None:
    assert Settings().max_body_bytes == 4 * 1024 * 1024


async def test_a_body_over_the_cap_is_413(client_with: MakeClient) -> None:
    http = await client_with(max_body_bytes=5000)

    response = await http.post(
        "/graphql", content=_padded(5001), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]
    assert "5000 bytes" in response.json()["errors"][0]["message"]


async def test_a_body_at_the_cap_runs(client_with: MakeClient) -> None:
    http = await client_with(max_body_bytes=5000)

    response = await http.post(
        "/graphql", content=_padded(5000), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 200
    assert response.json()["data"] == {"runs": {"totalCount": 120}}


async def test_a_chunked_body_over_the_cap_is_413(client_with: MakeClient) -> None:
    """No Content-Length: the cap counts what arrives."""
    http = await client_with(max_body_bytes=5000)

    response = await http.post(
        "/graphql", content=_chunks(_padded(9000)), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


async def test_a_refused_mutation_body_writes_nothing(client_with: MakeClient) -> None:
    http = await client_with(max_body_bytes=300)
    mutation = {
        "query": 'mutation { createAgent(input: {name: "big", kind: "echo", config: '
        '{note: "' + "x" * 400 + '"}}) { agent { id } } }'
    }

    response = await http.post("/graphql", json=mutation)

    assert response.status_code == 413
    listed = await http.post(
        "/graphql", json={"query": "{ agents(first: 100) { edges { node { name } } } }"}
    )
    assert "big" not in [e["node"]["name"] for e in listed.json()["data"]["agents"]["edges"]]


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    demo_database: Database, api_key: str
) -> None:
    """An ASGI call that says Content-Length: 1 GB and would fail if its body were read."""
    app = create_app(settings_with(max_body_bytes=5000), demo_database)
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"1000000000"),
        (b"authorization", f"Bearer {api_key}".encode()),
    ]
    await app(
        {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "scheme": "http",
            "query_string": b"",
            "http_version": "1.1",
            "server": ("runql.test", 80),
            "client": ("127.0.0.1", 1),
            "headers": headers,
        },
        receive,
        send,
    )

    assert sent[0]["status"] == 413
