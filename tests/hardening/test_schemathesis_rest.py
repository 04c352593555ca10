"""schemathesis fuzzes the REST endpoints of a real server from its own /openapi.json.

Each operation (GET /runs, POST /runs, GET /runs/{runId}) gets 50 requests the document calls
valid and 50 it calls invalid, derandomized. Every answer must be no 5xx, a status the document
lists, JSON, and conform to the document's schema for it (the contract's models); a request the
document calls invalid must be refused.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hardening.server import Server, running_server

EXAMPLES = 50
OPERATIONS = [("/runs", "GET"), ("/runs", "POST"), ("/runs/{runId}", "GET")]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SENT: list[int] = []  # every status, for the last test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No rate limit in the way, and no workers: generated runs never execute."""
    with running_server(
        tmp_path_factory.mktemp("schemathesis_rest"), demo_runs=20, RATE_LIMIT_BURST="1000000"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def session(server: Server) -> Iterator[requests.Session]:
    with requests.Session() as made:
        made.headers["Authorization"] = f"Bearer {server.key}"
        yield made


@pytest.fixture(scope="module")
def rest_schema(server: Server) -> Any:
    root = server.url.removesuffix("/graphql")
    return schemathesis.openapi.from_url(f"{root}/openapi.json", timeout=10)


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"]
)
@pytest.mark.parametrize(
    ("path", "method"), OPERATIONS, ids=[" ".join(op[::-1]) for op in OPERATIONS]
)
def test_no_generated_request_breaks_the_contract(
    rest_schema: Any,
    session: requests.Session,
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    operation = rest_schema[path][method]
    statuses: list[int] = []
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call(session=session, timeout=10)
        statuses.append(response.status_code)
        case.validate_response(response, checks=checks)

    send()

    assert statuses, "schemathesis sent nothing"
    SENT.extend(statuses)


def test_the_fuzzing_was_thorough_and_logged_no_traceback(server: Server) -> None:
    """Runs after the fuzzing above (pytest keeps the order of a file)."""
    assert len(SENT) >= 200, len(SENT)
    assert any(status in (200, 201) for status in SENT)
    log = Path(server.log).read_text()
    assert "Traceback" not in log
    assert "unexpected error" not in log
