"""Every response carries X-Request-ID: the client's own when it sent a sane one, else a new
one; a masked error names it next to its errorId, and the error's log record carries it."""

import logging
import re

import pytest
from sqlalchemy import text

from runql.app import create_app
from runql.operations.logs import RequestIdFilter
from runql.settings import Settings
from runql.storage.database import Database
from tests.operations.helpers import client

BROKEN = (
    "query Broken { runs(first: 5, filter: {status: ERROR}) { edges { node { errors { id } } } } }"
)


async def test_a_sane_request_id_is_echoed(database: Database, settings: Settings) -> None:
    async with client(create_app(settings, database)) as http:
        response = await http.get("/healthz", headers={"X-Request-ID": "edge-7f3a:42"})

    assert response.headers["x-request-id"] == "edge-7f3a:42"


@pytest.mark.parametrize("given", [None, "", "has spaces", "a" * 129, "new\nline", "é".encode()])
async def test_otherwise_a_new_one_is_made(
    database: Database, settings: Settings, given: str | bytes | None
) -> None:
    sent = given.encode("ascii") if isinstance(given, str) else given
    headers = {b"X-Request-ID": sent} if sent is not None else {}
    async with client(create_app(settings, database)) as http:
        first = await http.get("/healthz", headers=headers)
        second = await http.get("/healthz", headers=headers)

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in ids)
    assert ids[0] != ids[1]


async def test_refusals_carry_it_too(database: Database, settings: Settings) -> None:
    async with client(create_app(settings, database)) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ runs { totalCount } }"},
            headers={"X-Request-ID": "no-key-1"},
        )

    assert response.status_code == 401
    assert response.headers["x-request-id"] == "no-key-1"


async def test_a_masked_error_names_the_request(
    demo_database: Database, settings: Settings, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with demo_database.write() as session:
        await session.execute(text("DROP TABLE run_errors"))
    caplog.handler.addFilter(RequestIdFilter())
    async with client(create_app(settings, demo_database), api_key) as http:
        with caplog.at_level(logging.ERROR, logger="runql.errors"):
            response = await http.post(
                "/graphql", json={"query": BROKEN}, headers={"X-Request-ID": "req-broken-1"}
            )

    errors = response.json()["errors"]
    assert errors
    for error in errors:
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert error["extensions"]["requestId"] == "req-broken-1"
        assert re.fullmatch(r"[0-9a-f]{32}", error["extensions"]["errorId"])
    logged = [r for r in caplog.records if r.name == "runql.errors"]
    assert {getattr(r, "request_id", None) for r in logged} == {"req-broken-1"}
    assert {e["extensions"]["errorId"] for e in errors} <= {
        word for r in logged for word in r.getMessage().split()
    }
