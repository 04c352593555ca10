"""Prometheus instruments of this process, and the functions that record into them.

The edge (runql/edge.py) records HTTP requests and open websockets; the ObserveOperations schema
extension records GraphQL operations and active subscriptions. Scrape-time figures (runs by
status, the executor's queue and lease recoveries) are in runql/operations/scrape.py.

Per request, the HTTP and operation series are tallied in plain numbers (Tally: no lock, no
label lookup), and moved into their instruments whenever the registry is collected (a scrape,
`get_sample_value`): the registry's first collector, PENDING, does it, so every collection
reads them as if each observation had been recorded at once. prometheus_client takes a lock
for each counter increment and two for each histogram observation, ten a served request.
"""

import re
import threading
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)


class Tally:
    """Observations of one series since the last collection. A histogram's are kept as its
    buckets are (the count in the first bucket whose bound the amount does not pass, and the
    sum) and added to the histogram's own buckets and sum at the flush: prometheus_client has no
    public call that adds many observations at once, so this one reaches its `_sum` and
    `_buckets` (as Histogram.observe does, without the lock of each)."""

    __slots__ = ("bounds", "buckets", "count", "instrument", "total")

    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument  # a labelled Counter or Histogram
        self.bounds: list[float] | None = getattr(instrument, "_upper_bounds", None)
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(self.bounds or ())

    def add(self, amount: float = 1.0) -> None:
        if self.bounds is None:
            self.count += 1
            return
        self.total += amount
        self.buckets[bisect_left(self.bounds, amount)] += 1

    def flush(self) -> None:
        if self.bounds is None:
            count, self.count = self.count, 0
            if count:
                self.instrument.inc(count)
            return
        total, buckets = self.total, self.buckets
        if any(buckets):
            self.total, self.buckets = 0.0, [0] * len(buckets)
            self.instrument._sum.inc(total)
            for index, count in enumerate(buckets):
                if count:
                    self.instrument._buckets[index].inc(count)


class Pending:
    """The tallies, flushed by the registry's collection. Tallies are kept on one thread, the
    event loop's (where the edge, the fast lane, the schema extension and /metrics run), and
    flushed there; an observation from another thread goes straight to its instrument."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.tallies: list[Tally] = []

    def tally(self, instrument: Any) -> Tally:
        made = Tally(instrument)
        self.tallies.append(made)
        return made

    def here(self) -> bool:
        return threading.get_ident() == self.thread

    def collect(self) -> Iterator[Any]:
        """No metric of its own: the flush, before the registry's other collectors run."""
        if self.here():
            for tally in self.tallies:
                tally.flush()
        yield from ()


REGISTRY = CollectorRegistry(auto_describe=True)
PENDING = Pending()
REGISTRY.register(PENDING)  # first: collected before the instruments it adds to
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


class Series:
    """The tallies of one kind of request or operation: a count, durations and statement
    counts, recorded in one call (on the loop's thread each Tally's `add`, inline)."""

    __slots__ = ("count", "durations", "statement_counts")

    def __init__(self, count: Tally, durations: Tally, statement_counts: Tally) -> None:
        self.count = count
        self.durations = durations
        self.statement_counts = statement_counts

    def record(self, seconds: float, statements: int, timed: bool = True) -> None:
        count, durations, statement_counts = self.count, self.durations, self.statement_counts
        if threading.get_ident() != PENDING.thread:
            count.instrument.inc()
            if timed:
                durations.instrument.observe(seconds)
                statement_counts.instrument.observe(statements)
            return
        count.count += 1
        if timed:
            durations.total += seconds
            durations.buckets[bisect_left(durations.bounds, seconds)] += 1  # type: ignore[arg-type]
            statement_counts.total += statements
            bounds = statement_counts.bounds
            statement_counts.buckets[bisect_left(bounds, statements)] += 1  # type: ignore[arg-type]


_http_series: dict[tuple[str, str, int], Series] = {}


def _series_of(method: str, route: str, status: int) -> Series:
    """The tallies of one kind of request, made once (labels() takes a lock and builds its key
    on every call); method and route are labels of few values already."""
    key = (method, route, status)
    found = _http_series.get(key)
    if found is None:
        found = _http_series[key] = Series(
            PENDING.tally(HTTP_REQUESTS.labels(method, route, str(status))),
            PENDING.tally(HTTP_SECONDS.labels(method, route)),
            PENDING.tally(HTTP_STATEMENTS.labels(route)),
        )
    return found


def observe_http(method: str, route: str, status: int, seconds: float, statements: int) -> None:
    _series_of(method, route, status).record(seconds, statements)


_operation_series: dict[tuple[str, str, str], Series] = {}


def _operation_series_of(operation: str, kind: str, outcome: str) -> Series:
    """As _series_of: operation names are capped (operation_label), kinds and outcomes few."""
    key = (operation, kind, outcome)
    found = _operation_series.get(key)
    if found is None:
        found = _operation_series[key] = Series(
            PENDING.tally(OPERATIONS.labels(operation, kind, outcome)),
            PENDING.tally(OPERATION_SECONDS.labels(operation, kind)),
            PENDING.tally(OPERATION_STATEMENTS.labels(operation)),
        )
    return found


def observe_operation(
    operation: str, kind: str, outcome: str, seconds: float, statements: int
) -> None:
    """One GraphQL operation; subscriptions count but their lifetimes are no latency."""
    series = _operation_series_of(operation, kind, outcome)
    series.record(seconds, statements, timed=kind != "subscription")


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
