"""What feeds a hub. In one process: the database's commit listener. Across processes on
PostgreSQL: one LISTEN connection per process, which announces what other processes commit
(each run_events row NOTIFYs in the transaction that writes it, so only commits are heard).
Subscription code does not change with the feeder. The same connection hears key revocations
(runql/auth/revocation.py)."""

import asyncio
import contextlib
import logging

import asyncpg

from runql.auth.revocation import REVOCATION_CHANNEL, Revocations
from runql.bus.hub import Hub, Notice
from runql.storage.database import Database
from runql.storage.events import NOTIFY_CHANNEL, PROCESS, Announcement, RunEvent

log = logging.getLogger("runql.bus")

MAX_BACKOFF_SECONDS = 5.0


def feed_from_commits(hub: Hub, database: Database) -> None:
    """Publish a notice for every run event this process commits."""

    def publish(event: RunEvent) -> None:
        hub.publish(Notice(event.org_id, event.run_id, event.seq, event.status))

    database.on_commit(publish)


def _dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresListener:
    """One dedicated connection LISTENing for other processes' run events, reconnecting with
    backoff. After every (re)connection subscribers re-read the log, so nothing announced
    while the connection was down is lost."""

    def __init__(self, hub: Hub, database_url: str,
                 revocations: Revocations | None = None) -> None:
        self.hub = hub
        self.revocations = revocations
        self.dsn = _dsn(database_url)
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="runql-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            heard = Announcement.parse(payload)
        except ValueError:
            log.warning("ignored a malformed announcement on %s", NOTIFY_CHANNEL)
            return
        if heard.origin != PROCESS:  # this process's own commits reach the hub directly
            self.hub.publish(Notice(heard.org_id, heard.run_id, heard.seq, heard.status))

    def _heard_revocation(self, _connection: object, _pid: int, _channel: str,
                          key_id: str) -> None:
        if self.revocations is not None:
            self.revocations.revoked(key_id)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("LISTEN connection failed (%s); retrying in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            try:
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._heard)
                await connection.add_listener(REVOCATION_CHANNEL, self._heard_revocation)
                backoff = 0.1
                if self.connected.is_set():
                    self.reconnects += 1
                    if self.revocations is not None:  # some may have come while it was down
                        self.revocations.missed()
                self.connected.set()
                self.hub.wake_everyone()
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
