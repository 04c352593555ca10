"""The principals of recent secrets, so that an HTTP request with a known key costs no
database read. Only keys found valid are kept (an unknown secret is read every time, so a key
made later works at once); a revoked key's entry goes when the revocation notice says so: at
once in the revoking process, within a second in the others (runql/auth/revocation.py). While
the notice cannot vouch that it hears every revocation (PostgreSQL's LISTEN connection not yet
up, or lost), the cache is emptied and every request reads its key from the database."""

from collections import OrderedDict

from runql.auth.keys import Principal, lookup_hash, principal_by_hash
from runql.auth.revocation import Revocations
from runql.storage.database import Database

MAX_ENTRIES = 10_000


class PrincipalCache:
    def __init__(
        self, database: Database, revocations: Revocations, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._database = database
        self._max = max_entries
        self._entries: OrderedDict[str, Principal] = OrderedDict()
        # `cached`'s, by the secret itself (no hash per request); emptied when any entry ends
        self._by_secret: dict[str, Principal] = {}
        self._revocations = 0  # how many were heard: a read across one is not kept
        self._notice = revocations
        revocations.listen(self._revoked, self.clear)

    def __len__(self) -> int:
        return len(self._entries)

    async def authenticate(self, secret: str | None) -> Principal | None:
        """The principal a secret stands for; None for a missing, unknown or revoked key."""
        hashed = lookup_hash(secret)
        if hashed is None:
            return None
        if not self._notice.hearing:  # revocations may go unheard: read every time
            return await principal_by_hash(self._database, hashed)
        found = self._held(hashed)
        if found is not None:
            return found
        heard = self._revocations
        found = await principal_by_hash(self._database, hashed)
        if found is not None and heard == self._revocations and self._notice.hearing:
            self._remember(hashed, found)
        return found

    def cached(self, secret: str | None) -> Principal | None:
        """The principal of a secret held here, with no read; None where `authenticate` must
        read the key (or refuse it)."""
        if secret is None or not self._notice.hearing:
            return None
        found = self._by_secret.get(secret)
        if found is not None:
            return found
        hashed = lookup_hash(secret)
        found = None if hashed is None else self._held(hashed)
        if found is not None:
            if len(self._by_secret) >= self._max:
                self._by_secret.clear()
            self._by_secret[secret] = found
        return found

    def _held(self, hashed: str) -> Principal | None:
        found = self._entries.get(hashed)
        if found is not None:
            self._entries.move_to_end(hashed)
        return found

    def _remember(self, hashed: str, principal: Principal) -> None:
        self._entries[hashed] = principal
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
            self._by_secret.clear()

    def _revoked(self, key_id: str) -> None:
        self._revocations += 1
        self._by_secret.clear()
        for hashed in [h for h, principal in self._entries.items() if principal.key_id == key_id]:
            del self._entries[hashed]

    def clear(self) -> None:
        """Forget every principal (revocations may have been missed)."""
        self._revocations += 1
        self._entries.clear()
        self._by_secret.clear()
