"""The revocation notice: which API keys were revoked, as this process learns of them.

A key revoked in this process is announced at once (`revoke_key` given the notice); one revoked
by another process (`runql keys revoke` is one) reaches every process within a second: on
PostgreSQL by a NOTIFY sent in the revoking transaction and heard on the bus's LISTEN
connection, on SQLite by a poll of the keys table (runql/bus/revocations.py). Whatever holds
something a key opened (a websocket, a cached principal) listens here and lets it go.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from runql.storage.tables import ApiKeyRow

log = logging.getLogger("runql.auth")

REVOCATION_CHANNEL = "runql_revocations"

Listener = Callable[[str], None]
Missed = Callable[[], None]


class Revocations:
    """One per process: listeners are called with the id of each key revoked (a key may be
    announced more than once; listeners take that as nothing new)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._missed: list[Missed] = []
        self.hearing = True  # False while the notice cannot vouch that it hears every one

    def deaf(self) -> None:
        """Revocations may go unheard from now on (PostgreSQL's LISTEN connection is down):
        what holds something a key opened must not trust its copies until `heard_again`, which
        also has them look up what was missed (nothing is read here: this runs at shutdown)."""
        self.hearing = False

    def heard_again(self) -> None:
        """Every revocation is heard again; those made meanwhile must be looked up."""
        self.hearing = True
        self.missed()

    def listen(self, listener: Listener, missed: Missed | None = None) -> None:
        """`listener` hears each revoked key's id; `missed`, that revocations may have gone
        unheard (what it holds must then be checked again)."""
        self._listeners.append(listener)
        if missed is not None:
            self._missed.append(missed)

    def revoked(self, key_id: str) -> None:
        for listener in tuple(self._listeners):
            _call(listener, key_id)

    def missed(self) -> None:
        for listener in tuple(self._missed):
            _call(listener)


def _call(listener: Callable[..., None], *args: str) -> None:
    try:
        listener(*args)
    except Exception:  # one listener's fault does not keep the others from hearing
        log.exception("a revocation listener failed")


async def announce(session: AsyncSession, key_id: str) -> None:
    """Tell every other process, in the revoking transaction: heard only once it commits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :key_id)"),
            {"channel": REVOCATION_CHANNEL, "key_id": key_id},
        )


async def revoked_since(
    session: AsyncSession, since: datetime | None
) -> list[tuple[str, datetime]]:
    """Keys revoked at `since` or later (every revoked key when None), oldest first."""
    statement = select(col(ApiKeyRow.id), col(ApiKeyRow.revoked_at)).where(
        col(ApiKeyRow.revoked_at).is_not(None)
    )
    if since is not None:
        statement = statement.where(col(ApiKeyRow.revoked_at) >= since)
    rows = (await session.execute(statement.order_by(col(ApiKeyRow.revoked_at)))).all()
    return [(key_id, revoked_at) for key_id, revoked_at in rows if revoked_at is not None]


async def revoked_among(session: AsyncSession, key_ids: list[str]) -> list[str]:
    """Those of the keys that are revoked."""
    statement = select(col(ApiKeyRow.id)).where(
        col(ApiKeyRow.id).in_(key_ids), col(ApiKeyRow.revoked_at).is_not(None)
    )
    return list((await session.execute(statement)).scalars().all())
