"""schemathesis fuzzes /graphql of a real server: no generated operation may crash it.

The schema is loaded by introspection. Each root query and mutation field gets 50 valid
documents (positive mode) and 50 with wrong inputs (negative mode), derandomized so every run
sends the same ones: 1,500 requests. None may answer 5xx or a masked internal error.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from runql.served_schema import build_schema
from tests.hardening.server import Server, running_server

EXAMPLES = 50
ROOTS = build_schema()._schema
LABELS = [
    f"{root.name}.{field}"
    for root in (ROOTS.query_type, ROOTS.mutation_type)
    if root is not None
    for field in root.fields
]
SENT: list[int] = []  # every status, for the last test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Introspection on (schemathesis reads the schema with it), no rate limit in the way, and
    no workers: generated runs never execute, so no generated webhook is ever called."""
    with running_server(
        tmp_path_factory.mktemp("schemathesis"),
        demo_runs=20,
        INTROSPECTION="true",
        RATE_LIMIT_BURST="1000000",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def session(server: Server) -> Iterator[requests.Session]:
    with requests.Session() as made:
        made.headers["Authorization"] = f"Bearer {server.key}"
        yield made


@pytest.fixture(scope="module")
def graphql_schema(server: Server, session: requests.Session) -> Any:
    return schemathesis.graphql.from_url(server.url, headers=dict(session.headers), timeout=10)


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"]
)
@pytest.mark.parametrize("label", LABELS)
def test_no_generated_operation_crashes_the_server(
    graphql_schema: Any,
    session: requests.Session,
    server: Server,
    label: str,
    mode: GenerationMode,
) -> None:
    type_name, field = label.split(".")
    operation = graphql_schema[type_name][field]
    statuses: list[int] = []

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
        assert response.status_code < 500, (case.body, response.text)
        assert "INTERNAL_SERVER_ERROR" not in response.text, (case.body, response.text)
        assert "Internal server error" not in response.text, (case.body, response.text)

    send()

    assert statuses, "schemathesis sent nothing"
    SENT.extend(statuses)


def test_the_fuzzing_was_thorough_and_logged_no_traceback(server: Server) -> None:
    """Runs after the fuzzing above (pytest keeps the order of a file)."""
    assert len(SENT) >= 1000, len(SENT)
    log = Path(server.log).read_text()

    assert "Traceback" not in log
    assert "unexpected error" not in log
