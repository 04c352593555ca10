"""With RUNQL_OTEL=1 each GraphQL operation is a span named after it, and each SQL statement
it runs a span inside it. Tested where the `otel` extra is installed (the dev extras have it)."""

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from runql.app import create_app
from runql.operations import tracing
from runql.settings import Settings
from runql.storage.database import Database
from tests.operations.helpers import client


@pytest.fixture
def exported(demo_database: Database) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    tracing.trace_sql(demo_database.engine)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def test_an_operation_is_a_span_around_its_sql(
    demo_database: Database, settings: Settings, api_key: str, exported: InMemorySpanExporter
) -> None:
    async with client(create_app(settings, demo_database), api_key) as http:
        exported.clear()  # the API key's lookup is no part of the operation
        body = (
            await http.post(
                "/graphql",
                json={
                    "query": "query Traced "
                    "{ runs(first: 3) { edges { node { id agent { name } } } } }"
                },
            )
        ).json()

    spans = exported.get_finished_spans()
    operation = _named(spans, "query Traced")
    assert operation.attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Traced",
        "runql.outcome": "success",
    }
    assert operation.context is not None
    inside = [
        span
        for span in spans
        if span.parent is not None and span.parent.span_id == operation.context.span_id
    ]
    assert len(inside) == body["extensions"]["sql"]["statements"] > 0
    for span in inside:
        assert span.kind is SpanKind.CLIENT
        assert span.name == "SELECT"
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == demo_database.engine.dialect.name
        assert str(span.attributes["db.query.text"]).startswith("SELECT")
        assert span.context is not None
        assert span.context.trace_id == operation.context.trace_id


async def test_a_failed_operation_is_an_error_span(
    demo_database: Database, settings: Settings, api_key: str, exported: InMemorySpanExporter
) -> None:
    async with client(create_app(settings, demo_database), api_key) as http:
        await http.post(
            "/graphql", json={"query": "query Refused { runs(first: 10000) { totalCount } }"}
        )

    span = _named(exported.get_finished_spans(), "query Refused")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["runql.outcome"] == "client_error"


async def test_without_tracing_nothing_is_recorded(
    demo_database: Database, settings: Settings, api_key: str, exported: InMemorySpanExporter
) -> None:
    tracing.disable()
    async with client(create_app(settings, demo_database), api_key) as http:
        await http.post("/graphql", json={"query": "query Untraced { runs { totalCount } }"})

    assert exported.get_finished_spans() == ()
