"""The open websockets by the API key that opened them. When a key is revoked (the revocation
notice, runql/auth/revocation.py), each of its sockets ends its operations and closes with 4403,
so a revoked key keeps nothing open."""

import asyncio
from collections import defaultdict
from typing import Protocol

from runql.auth.revocation import Revocations

REVOKED_CLOSE_CODE = 4403
REVOKED_REASON = "the API key was revoked"


class Revocable(Protocol):
    async def close_revoked(self) -> None:
        """End every operation, then close the socket with 4403."""


class OpenSockets:
    def __init__(self, revocations: Revocations) -> None:
        self._by_key: defaultdict[str, set[Revocable]] = defaultdict(set)
        self._closing: set[asyncio.Task[None]] = set()
        revocations.listen(self._revoked)

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_key.values())

    def hold(self, key_id: str, socket: Revocable) -> None:
        self._by_key[key_id].add(socket)

    def release(self, key_id: str, socket: Revocable) -> None:
        sockets = self._by_key.get(key_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_key[key_id]

    def _revoked(self, key_id: str) -> None:
        for socket in self._by_key.pop(key_id, ()):
            closing = asyncio.get_running_loop().create_task(
                socket.close_revoked(), name="runql-revoked-socket")
            self._closing.add(closing)
            closing.add_done_callback(self._closed)

    def _closed(self, closing: "asyncio.Task[None]") -> None:
        self._closing.discard(closing)
        if not closing.cancelled():
            closing.exception()  # a socket that went away first: nothing more to close
