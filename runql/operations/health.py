"""GET /healthz (the process answers) and GET /readyz (it can serve: the database answers, its
migrations are current, and the executor's workers run when RUNQL_WORKERS asks for some).
Readiness answers 503 naming the checks that failed; neither needs an API key."""

import asyncio
from dataclasses import dataclass
from functools import cache

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runql.lifecycle.executor import Executor
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.migrate import head_revision

DATABASE_TIMEOUT_SECONDS = 3.0
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@cache
def _head() -> str | None:
    return head_revision()


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def check_database(database: Database) -> list[Check]:
    """The database answers, and it is at the latest migration (one connection, two reads)."""
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS), database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            revision = await conn.run_sync(_revision)
    except (SQLAlchemyError, OSError, TimeoutError):
        return [Check("database", False, "the database did not answer")]
    head = _head()
    migrations = (
        Check("migrations", True, f"at {head}")
        if revision == head
        else Check(
            "migrations", False, f"at {revision or 'no revision'}, not {head}: run `runql migrate`"
        )
    )
    return [Check("database", True, "answers"), migrations]


def workers_running(executor: Executor | None) -> bool:
    return executor is not None and executor.running


def check_workers(settings: Settings, executor: Executor | None) -> Check | None:
    if settings.workers <= 0:
        return None  # runs are executed elsewhere (`runql worker`)
    if workers_running(executor):
        return Check("workers", True, f"{settings.workers} running")
    return Check("workers", False, f"{settings.workers} configured, not running")


async def readiness(
    database: Database, settings: Settings, executor: Executor | None
) -> list[Check]:
    checks = await check_database(database)
    workers = check_workers(settings, executor)
    return checks if workers is None else [*checks, workers]


def readiness_body(checks: list[Check]) -> dict[str, object]:
    failing = [check.name for check in checks if not check.ok]
    return {
        "status": "unready" if failing else "ready",
        "failing": failing,
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    state = request.app.state
    checks = await readiness(state.database, state.settings, getattr(state, "executor", None))
    body = readiness_body(checks)
    return JSONResponse(body, status_code=503 if body["failing"] else 200, headers=NO_STORE)
