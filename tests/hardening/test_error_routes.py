"""Every error of every route is JSON with a code, on a real server: Starlette's own 404s and
405s, 413, 415, and a 500 from an exception no route caught (masked, its id in the log)."""

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from runql.app import create_app
from runql.settings import Settings
from runql.storage.database import Database
from tests.hardening.server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("errors"), MAX_BODY_BYTES="1000", METRICS_TOKEN="scrape"
    ) as started:
        yield started


def _request(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    base = server.url.removesuffix("/graphql")
    headers = {"Authorization": f"Bearer {server.key}", **kwargs.pop("headers", {})}
    return httpx.request(method, base + path, headers=headers, timeout=10, **kwargs)


def _graphql_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


REFUSALS = [
    ("PUT", "/graphql", {}, 405, "METHOD_NOT_ALLOWED"),
    ("DELETE", "/graphql", {}, 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/graphql/static/nothing.js", {}, 404, "NOT_FOUND"),
    (
        "POST",
        "/graphql",
        {"content": b"{}" + b" " * 2000, "headers": {"Content-Type": "application/json"}},
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "POST",
        "/graphql",
        {"content": b"query=x", "headers": {"Content-Type": "text/plain"}},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "POST",
        "/graphql",
        {
            "content": b'{"query": "{ __typename }", "query": "{ __typename }"}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "BAD_REQUEST",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "sent", "status", "code"),
    REFUSALS,
    ids=["put", "delete", "static", "413", "415", "duplicate-key"],
)
def test_graphql_refusals_are_graphql_errors(
    server: Server, method: str, path: str, sent: dict[str, Any], status: int, code: str
) -> None:
    response = _request(server, method, path, **sent)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert _graphql_code(response) == code


REST_REFUSALS = [
    ("GET", "/nope", 404, "not_found"),
    ("PUT", "/runs", 405, "method_not_allowed"),
    ("DELETE", "/runs/run_AAAAAAAAAAAAAAAAAAAA", 405, "method_not_allowed"),
    ("PUT", "/healthz", 405, "method_not_allowed"),
    ("POST", "/metrics", 405, "method_not_allowed"),
    ("GET", "/metrics", 401, "unauthenticated"),  # the scrape token is not the API key
]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    REST_REFUSALS,
    ids=["unknown-path", "put-runs", "delete-run", "put-healthz", "post-metrics", "metrics-token"],
)
def test_other_refusals_are_rest_errors(
    server: Server, method: str, path: str, status: int, code: str
) -> None:
    response = _request(server, method, path)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code
    assert response.json()["status"] == status


def test_a_405_says_what_is_allowed(server: Server) -> None:
    response = _request(server, "PUT", "/graphql")

    assert "POST" in response.headers["allow"]
    assert "PUT is not allowed on /graphql" in response.json()["errors"][0]["message"]


async def _renamed_keys_table(database: Database) -> None:
    """A fault no route expects: the table of API keys is gone."""
    async with database.write() as session:
        await session.execute(text("ALTER TABLE api_keys RENAME TO api_keys_gone"))


@pytest.mark.parametrize(("path", "shape"), [("/graphql", "graphql"), ("/runs", "rest")])
async def test_an_unexpected_exception_is_a_masked_json_500(
    demo_database: Database,
    settings: Settings,
    path: str,
    shape: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings, demo_database)
    await _renamed_keys_table(demo_database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://runql.test") as client:
        response = await client.get(
            path,
            params={"query": "{ __typename }"},
            headers={"Authorization": "Bearer runql_sk_whatever"},
        )

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if shape == "graphql":
        extensions = body["errors"][0]["extensions"]
        assert extensions["code"] == "INTERNAL_SERVER_ERROR"
        error_id = extensions["errorId"]
    else:
        assert body["code"] == "internal_server_error"
        error_id = body["error_id"]
    assert "Traceback" not in response.text
    assert "api_keys" not in response.text
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


def test_the_server_log_keeps_the_masked_exception(tmp_path: Path) -> None:
    with running_server(tmp_path) as started:
        sqlite3.connect(tmp_path / "runql.db").execute(
            "ALTER TABLE api_keys RENAME TO api_keys_gone"
        ).connection.commit()
        response = _request(started, "POST", "/graphql", json={"query": "{ __typename }"})

        assert response.status_code == 500
        assert _graphql_code(response) == "INTERNAL_SERVER_ERROR"
        error_id = response.json()["errors"][0]["extensions"]["errorId"]
    log = started.log.read_text()
    assert error_id in log
    assert "Traceback" in log
