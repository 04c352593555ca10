"""GET /metrics: this process's instruments, plus figures read when Prometheus scrapes: runs by
status across every organization (one GROUP BY), the executor's queue depth (pending runs) and
its lease recoveries, and the write transactions this process has committed."""

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response

from runql.auth.keys import bearer_secret
from runql.enums import RunStatus
from runql.lifecycle.executor import Executor
from runql.operations.metrics import REGISTRY
from runql.security.responses import rest_error_response
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import RunRow

log = logging.getLogger("runql.metrics")


async def runs_by_status(database: Database) -> dict[str, int]:
    """Every status with its count of runs (0 for none), in one statement."""
    statement = select(col(RunRow.status), func.count()).group_by(col(RunRow.status))
    async with database.read() as session:
        rows = (await session.execute(statement)).all()
    counts = {status.value: 0 for status in RunStatus}
    counts.update({str(status): int(count) for status, count in rows})
    return counts


@dataclass(frozen=True, eq=False)  # a collector: registries key them by identity
class Snapshot:
    """What a scrape reads: run counts (None when the database did not answer), executor."""

    runs: dict[str, int] | None
    executor: Executor | None
    write_commits: int = 0

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self.runs is not None:
            runs = GaugeMetricFamily(
                "runql_runs", "Runs by status, in every organization.", labels=["status"]
            )
            for status, count in sorted(self.runs.items()):
                runs.add_metric([status], count)
            yield runs
            yield GaugeMetricFamily(
                "runql_executor_queue_depth",
                "Runs waiting for a worker (PENDING).",
                value=self.runs.get(RunStatus.PENDING.value, 0),
            )
        yield CounterMetricFamily(
            "runql_database_write_commits",
            "Write transactions this process committed (runs, events, replies; reads aside).",
            value=self.write_commits,
        )
        if self.executor is not None:
            yield CounterMetricFamily(
                "runql_executor_lease_recoveries",
                "Runs this process's executor ended because their worker's lease expired.",
                value=self.executor.recovered,
            )


async def snapshot(database: Database, executor: Executor | None) -> Snapshot:
    try:
        runs: dict[str, int] | None = await runs_by_status(database)
    except (SQLAlchemyError, OSError):
        log.warning("metrics: the database did not answer; runs by status left out")
        runs = None
    return Snapshot(runs, executor, database.write_commits)


def exposition(snap: Snapshot) -> bytes:
    """The process's instruments, then the scrape's figures (a registry of their own)."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(snap)
    return generate_latest(REGISTRY) + generate_latest(scraped)


def allowed(settings: Settings, authorization: str | None) -> bool:
    """Open unless RUNQL_METRICS_TOKEN is set; then that bearer token is needed."""
    if settings.metrics_token is None:
        return True
    given = bearer_secret(authorization) or ""
    return hmac.compare_digest(given.encode(), settings.metrics_token.encode())


async def metrics(request: Request) -> Response:
    state = request.app.state
    if not allowed(state.settings, request.headers.get("authorization")):
        return rest_error_response(
            401,
            "UNAUTHENTICATED",
            "a scrape token is required: Authorization: Bearer …",
            headers={"WWW-Authenticate": "Bearer"},
        )
    snap = await snapshot(state.database, getattr(state, "executor", None))
    return Response(
        exposition(snap), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )
