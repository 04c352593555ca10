"""Optional OpenTelemetry tracing (RUNQL_OTEL=1, with the `otel` extra installed): a span for
each GraphQL operation and, inside it, one for each SQL statement it runs. Spans go out over
OTLP/HTTP as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME…).
Without RUNQL_OTEL nothing here imports OpenTelemetry or costs more than a check."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

SERVICE_NAME = "runql"
MAX_STATEMENT_CHARS = 2000
_SPAN = "runql_sql_span"
_tracer: "Tracer | None" = None


class TracingUnavailable(RuntimeError):
    pass


def provider_from_env() -> "TracerProvider":
    """An SDK provider exporting over OTLP/HTTP, made global for other instrumentation."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingUnavailable(
            "RUNQL_OTEL=1 needs OpenTelemetry: pip install 'runql[otel]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def enable(provider: "TracerProvider") -> None:
    global _tracer
    _tracer = provider.get_tracer("runql")


def disable() -> None:
    global _tracer
    _tracer = None


def is_enabled() -> bool:
    return _tracer is not None


@contextmanager
def operation_span() -> Iterator["Span | None"]:
    """The span of one GraphQL operation (None when tracing is off); its SQL nests inside."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span("graphql.operation") as span:
        yield span


def describe_operation(span: "Span | None", kind: str, name: str | None, outcome: str) -> None:
    """Named as OpenTelemetry's GraphQL conventions say, once the document is parsed."""
    if span is None:
        return
    span.update_name(f"{kind} {name}" if name else kind)
    span.set_attribute("graphql.operation.type", kind)
    if name:
        span.set_attribute("graphql.operation.name", name)
    span.set_attribute("runql.outcome", outcome)
    if outcome != "success":
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR, outcome)


def _before(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    if _tracer is None or statement.startswith("BEGIN"):
        return
    from opentelemetry.trace import SpanKind

    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    conn.info[_SPAN] = _tracer.start_span(
        verb,
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": conn.dialect.name,
            "db.operation.name": verb,
            "db.query.text": statement[:MAX_STATEMENT_CHARS],
        },
    )


def _after(conn: Connection, *_: Any) -> None:
    span = conn.info.pop(_SPAN, None)
    if span is not None:
        span.end()


def _failed(context: ExceptionContext) -> None:
    span = context.connection.info.pop(_SPAN, None) if context.connection is not None else None
    if span is not None:
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR, type(context.original_exception).__name__)
        span.end()


def trace_sql(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine
    for name, listener in (
        ("before_cursor_execute", _before),
        ("after_cursor_execute", _after),
        ("handle_error", _failed),
    ):
        if not event.contains(sync_engine, name, listener):
            event.listen(sync_engine, name, listener)
