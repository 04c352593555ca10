"""The open websockets by the API key that opened them. When a key is revoked (the revocation
notice, runql/auth/revocation.py), each of its sockets ends its operations and closes with 4403,
so a revoked key keeps nothing open. When the notice may have missed revocations, the keys of
the open sockets are looked up again."""

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Coroutine
from typing import Any, Protocol

from runql.auth.revocation import Revocations, revoked_among
from runql.storage.database import Database

log = logging.getLogger("runql.fanout")

REVOKED_CLOSE_CODE = 4403
RECENT_REVOCATIONS = 1000  # remembered for sockets whose key was checked just before
REVOKED_REASON = "the API key was revoked"


class Revocable(Protocol):
    async def close_revoked(self) -> None:
        """End every operation, then close the socket with 4403."""


class OpenSockets:
    def __init__(self, database: Database, revocations: Revocations) -> None:
        self._database = database
        self._by_key: defaultdict[str, set[Revocable]] = defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        revocations.listen(self._revoked, self._missed)

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_key.values())

    def hold(self, key_id: str, socket: Revocable) -> None:
        """Hold a socket whose key was found valid; if the key's revocation was heard since,
        it closes at once."""
        if key_id in self._recent:
            self._background(socket.close_revoked(), "runql-revoked-socket")
            return
        self._by_key[key_id].add(socket)

    def release(self, key_id: str, socket: Revocable) -> None:
        sockets = self._by_key.get(key_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_key[key_id]

    def _revoked(self, key_id: str) -> None:
        self._recent[key_id] = None
        while len(self._recent) > RECENT_REVOCATIONS:
            self._recent.popitem(last=False)
        for socket in self._by_key.pop(key_id, ()):
            self._background(socket.close_revoked(), "runql-revoked-socket")

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _missed(self) -> None:
        self._background(self._recheck(), "runql-recheck-keys")

    async def _recheck(self) -> None:
        async with self._database.read() as session:
            revoked = await revoked_among(session, list(self._by_key))
        for key_id in revoked:
            self._revoked(key_id)

    def _done(self, task: "asyncio.Task[None]") -> None:
        """A socket already gone cannot be closed; a recheck the database refused is made
        again on the next reconnection."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed", task.get_name(), exc_info=task.exception())
