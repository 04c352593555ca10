"""How another process's key revocations reach this one on SQLite, which has no NOTIFY: a
poll of the keys table for revocations since the last look (PostgreSQL hears them on the LISTEN
connection, runql/bus/feeders.py). SQLite commits one writer at a time and stamps a revocation
inside its transaction, so a look from the latest stamp seen on misses none."""

import asyncio
import contextlib
import logging
from datetime import datetime

from runql.auth.revocation import Revocations, revoked_since
from runql.storage.database import Database

log = logging.getLogger("runql.bus")

POLL_SECONDS = 0.25


class RevocationPoll:
    def __init__(
        self, database: Database, revocations: Revocations, every: float = POLL_SECONDS
    ) -> None:
        self.database = database
        self.revocations = revocations
        self.every = every
        self._since: datetime | None = None
        self._seen: set[str] = set()  # keys revoked at `_since`, already announced
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Revocations from now on: the keys revoked before opened nothing in this process."""
        self._remember(await self._read())
        self._task = asyncio.create_task(self._run(), name="runql-revocation-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> list[tuple[str, datetime]]:
        async with self.database.read() as session:
            return await revoked_since(session, self._since)

    def _remember(self, found: list[tuple[str, datetime]]) -> list[str]:
        """Take note of `found`; the ids in it not announced before."""
        new = [key_id for key_id, _ in found if key_id not in self._seen]
        if found:
            latest = found[-1][1]
            if latest != self._since:
                self._since, self._seen = latest, set()
            self._seen.update(key_id for key_id, at in found if at == latest)
        return new

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                found = await self._read()
            except Exception:  # a busy or briefly unreachable database: look again next time
                log.exception("could not read revoked keys")
                continue
            for key_id in self._remember(found):
                self.revocations.revoked(key_id)
