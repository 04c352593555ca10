"""Prometheus instruments of this process, and the functions that record into them.

The edge (runql/edge.py) records HTTP requests and open websockets; the ObserveOperations schema
extension records GraphQL operations and active subscriptions. Scrape-time figures (runs by
status, the executor's queue and lease recoveries) are in runql/operations/scrape.py.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATEMENTS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233)

HTTP_REQUESTS = Counter(
    "runql_http_requests",
    "HTTP requests answered, by method, route and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "runql_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route.",
    ["method", "route"],
    buckets=SECONDS,
    registry=REGISTRY,
)
HTTP_STATEMENTS = Histogram(
    "runql_http_request_sql_statements",
    "SQL statements run to answer one HTTP request.",
    ["route"],
    buckets=STATEMENTS,
    registry=REGISTRY,
)
OPERATIONS = Counter(
    "runql_graphql_operations",
    "GraphQL operations, by operation name, type and outcome "
    "(success, client_error, server_error).",
    ["operation", "type", "outcome"],
    registry=REGISTRY,
)
OPERATION_SECONDS = Histogram(
    "runql_graphql_operation_duration_seconds",
    "Time to execute a query or mutation, by operation name and type.",
    ["operation", "type"],
    buckets=SECONDS,
    registry=REGISTRY,
)
OPERATION_STATEMENTS = Histogram(
    "runql_graphql_operation_sql_statements",
    "SQL statements one query or mutation ran.",
    ["operation"],
    buckets=STATEMENTS,
    registry=REGISTRY,
)
WEBSOCKETS = Gauge("runql_websockets_open", "Websocket connections open now.", registry=REGISTRY)
HTTP_STREAMS = Gauge(
    "runql_http_streams_open",
    "Subscription streams open over HTTP, by protocol (multipart, graphql-sse).",
    ["protocol"],
    registry=REGISTRY,
)
SUBSCRIPTIONS = Gauge(
    "runql_subscriptions_active",
    "GraphQL subscriptions running now, by root field.",
    ["subscription"],
    registry=REGISTRY,
)

ANONYMOUS = "anonymous"
OTHER = "other"
MAX_OPERATION_NAMES = 500
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_seen_names: set[str] = set()


def operation_label(name: str | None) -> str:
    """The operation's name as a label value; names are chosen by clients, so their number is
    capped (later ones count as "other") to keep the series few."""
    if not name:
        return ANONYMOUS
    if not _NAME.fullmatch(name):
        return OTHER
    if name not in _seen_names:
        if len(_seen_names) >= MAX_OPERATION_NAMES:
            return OTHER
        _seen_names.add(name)
    return name


_HttpSeries = tuple[Counter, Histogram, Histogram]
_http_series: dict[tuple[str, str, int], _HttpSeries] = {}


def _series_of(method: str, route: str, status: int) -> _HttpSeries:
    """The labelled series of one kind of request, looked up once (labels() takes a lock and
    builds its key on every call); method and route are labels of few values already."""
    key = (method, route, status)
    found = _http_series.get(key)
    if found is None:
        found = _http_series[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_SECONDS.labels(method, route),
            HTTP_STATEMENTS.labels(route),
        )
    return found


def observe_http(method: str, route: str, status: int, seconds: float, statements: int) -> None:
    requests, durations, statement_counts = _series_of(method, route, status)
    requests.inc()
    durations.observe(seconds)
    statement_counts.observe(statements)


_OperationSeries = tuple[Counter, Histogram, Histogram]
_operation_series: dict[tuple[str, str, str], _OperationSeries] = {}


def _operation_series_of(operation: str, kind: str, outcome: str) -> _OperationSeries:
    """As _series_of: operation names are capped (operation_label), kinds and outcomes few."""
    key = (operation, kind, outcome)
    found = _operation_series.get(key)
    if found is None:
        found = _operation_series[key] = (
            OPERATIONS.labels(operation, kind, outcome),
            OPERATION_SECONDS.labels(operation, kind),
            OPERATION_STATEMENTS.labels(operation),
        )
    return found


def observe_operation(
    operation: str, kind: str, outcome: str, seconds: float, statements: int
) -> None:
    """One GraphQL operation; subscriptions count but their lifetimes are no latency."""
    count, durations, statement_counts = _operation_series_of(operation, kind, outcome)
    count.inc()
    if kind != "subscription":
        durations.observe(seconds)
        statement_counts.observe(statements)


def websocket_opened() -> None:
    WEBSOCKETS.inc()


def websocket_closed() -> None:
    WEBSOCKETS.dec()


def http_stream_opened(protocol: str) -> None:
    HTTP_STREAMS.labels(protocol).inc()


def http_stream_closed(protocol: str) -> None:
    HTTP_STREAMS.labels(protocol).dec()


def subscription_started(field: str) -> None:
    SUBSCRIPTIONS.labels(field).inc()


def subscription_ended(field: str) -> None:
    SUBSCRIPTIONS.labels(field).dec()


@contextmanager
def subscription_active(field: str) -> Iterator[None]:
    """`with subscription_active("runStatus"): ...` around a subscription that runs outside
    GraphQL execution (GraphQL subscriptions are counted by ObserveOperations already)."""
    subscription_started(field)
    try:
        yield
    finally:
        subscription_ended(field)
