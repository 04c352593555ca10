"""What feeds a hub. In one process: the database's commit listener. Across processes on
PostgreSQL: one LISTEN connection per process, which announces what other processes commit
(each run_events row NOTIFYs in the transaction that writes it, so only commits are heard).
The same connection hears key revocations (runql/auth/revocation.py).
Across processes on SQLite: a tail of the run_events log per process, which reads the rows
committed since it last looked whenever the file changed (revocations are polled apart,
runql/bus/revocations.py). Subscription code does not change with the feeder."""

import asyncio
import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

import asyncpg

from runql.auth.revocation import REVOCATION_CHANNEL, Revocations
from runql.bus.hub import Hub, Notice
from runql.storage.database import Database, sqlite_file
from runql.storage.events import (
    NOTIFY_CHANNEL,
    PROCESS,
    Announcement,
    Logged,
    RunEvent,
    last_logged_id,
    logged_after,
)

log = logging.getLogger("runql.bus")

MAX_BACKOFF_SECONDS = 5.0
TAIL_SECONDS = 0.02  # how often the SQLite tail asks whether the file changed


class Feeder(Protocol):
    """Announces other processes' commits to this process's hub from start to stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def other_processes(
    hub: Hub, database: Database, revocations: Revocations | None = None
) -> Feeder | None:
    """The feeder that hears other processes' commits to the database: a LISTEN connection
    on PostgreSQL, a tail of the log on a SQLite file; None for an in-memory SQLite database,
    which no other process shares."""
    url = database.engine.url.render_as_string(hide_password=False)
    if not database.is_sqlite:
        return PostgresListener(hub, url, revocations)
    path = sqlite_file(url)
    return None if path is None else SQLiteTail(hub, path, database)


def feed_from_commits(hub: Hub, database: Database) -> None:
    """Publish a notice for every run event this process commits, the event with it."""

    def publish(event: RunEvent) -> None:
        hub.publish(Notice(event.org_id, event.run_id, event.seq, event.status, event))

    database.on_commit(publish)


def _dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


_OWN = f"{PROCESS}|"  # how this process's announcements begin (RunEvent.around_seq)


class PostgresListener:
    """One dedicated connection LISTENing for other processes' run events, reconnecting with
    backoff. After every (re)connection subscribers re-read the log, so nothing announced
    while the connection was down is lost."""

    def __init__(self, hub: Hub, database_url: str, revocations: Revocations | None = None) -> None:
        self.hub = hub
        self.revocations = revocations
        if revocations is not None:  # until the connection listens, nothing is heard
            revocations.deaf()
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
        if payload.startswith(_OWN):  # this process's own commits reach the hub directly:
            return  # not even parsed (a streaming process hears thousands a second)
        try:
            heard = Announcement.parse(payload)
        except ValueError:
            log.warning("ignored a malformed announcement on %s", NOTIFY_CHANNEL)
            return
        self.hub.publish(Notice(heard.org_id, heard.run_id, heard.seq, heard.status, heard.event))

    def _heard_revocation(self, _connection: object, _pid: int, _channel: str, key_id: str) -> None:
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
                if self.revocations is not None:  # some may have come before it listened
                    self.revocations.heard_again()
                self.connected.set()
                self.hub.wake_everyone()
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            finally:
                if self.revocations is not None:  # none are heard until it listens again
                    self.revocations.deaf()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)


class SQLiteTail:
    """Other processes' run events on a SQLite file, announced within about TAIL_SECONDS.

    A thread of its own asks `PRAGMA data_version` (which changes when another connection
    commits; it reads shared memory, no file) every TAIL_SECONDS, and only when it changed
    reads the run_events rows above the last id it saw. Idle, that is one cheap statement per
    tick and nothing on the event loop. Rows this process wrote are announced by its commit
    listener too, with their events: the hub announces each event once. What the tail read
    while a commit of `database` (this process's) was under way is announced once that commit
    has announced its own events (Database.when_announced): otherwise the tail, reading a
    row between its COMMIT and its announcement, would announce it first, without its event,
    and send every subscriber of its run to read the log (at 100 streaming runs, a few
    hundred reads in 10 s)."""

    def __init__(
        self, hub: Hub, path: str, database: Database | None = None, interval: float = TAIL_SECONDS
    ) -> None:
        self.hub = hub
        self.path = path
        self.database = database
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._after: int | None = None  # the last id read; None until the log could be read

    async def start(self) -> None:
        """From here on, every commit of another process is announced (once the database is
        migrated: until then the tail retries)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(sqlite3.Error):  # the thread retries, and says why
            await asyncio.to_thread(self._open)
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="runql-sqlite-tail", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._connection is not None:
            self._connection.close()

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:  # read-write, so that it sees the WAL; never creates
            uri = f"{Path(self.path).resolve().as_uri()}?mode=rw"
            self._connection = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA busy_timeout=10000")
        if self._after is None:
            self._after = last_logged_id(self._connection)
        return self._connection

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        version = None
        backoff = self.interval
        while not self._stop.wait(backoff):
            try:
                version = self._read(loop, version)
                backoff = self.interval
            except sqlite3.Error as error:
                log.warning(
                    "reading the run_events log of %s failed (%s); retrying", self.path, error
                )
                version, backoff = None, min(backoff * 2, MAX_BACKOFF_SECONDS)
            except RuntimeError:  # the event loop closed without stopping the tail
                return

    def _read(self, loop: asyncio.AbstractEventLoop, version: int | None) -> int:
        """Announce the rows committed since the last read, if the file changed; the file's
        version now."""
        connection = self._open()
        now = int(connection.execute("PRAGMA data_version").fetchone()[0])
        if now == version:
            return now
        while rows := logged_after(connection, self._after or 0):
            self._after = rows[-1].id
            loop.call_soon_threadsafe(self._announce, rows)
        return now

    def _announce(self, rows: list[Logged]) -> None:
        if self.database is None:
            self._publish(rows)
        else:
            self.database.when_announced(lambda: self._publish(rows))

    def _publish(self, rows: list[Logged]) -> None:
        for row in rows:  # the hub drops what this process's commit listener announced
            self.hub.publish(Notice(row.org_id, row.run_id, row.seq, row.status))
