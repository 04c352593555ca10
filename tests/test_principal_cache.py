"""HTTP authentication keeps the principals of known keys (runql/auth/principals.py); a revoked
key is refused on the very next request in the process that revokes it, and within a second in
the others (here the revoking process is `runql keys revoke`)."""

import asyncio
import time

import httpx

from runql.app import create_app
from runql.auth.keys import create_key, revoke_key
from runql.auth.principals import PrincipalCache
from runql.settings import Settings
from runql.storage.database import Database
from tests.subscriptions.conftest import serve
from tests.subscriptions.test_revocation import _revoke_in_another_process

QUERY = {"query": "{ __typename }"}
WITHIN_SECONDS = 1.0


async def test_the_revoking_process_refuses_the_key_on_the_next_request(
    database: Database, settings: Settings
) -> None:
    key = await create_key(database, "doomed")
    app = create_app(settings, database)
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runql.test", headers=headers
    ) as client:
        before = [(await client.post("/graphql", json=QUERY)).status_code for _ in range(3)]
        cached = len(app.state.principals)
        await revoke_key(database, key.row.id, app.state.revocations)
        after = await client.post("/graphql", json=QUERY)
    assert before == [200, 200, 200]
    assert cached == 1  # the key was served from the cache
    assert after.status_code == 401


async def test_a_read_that_crosses_a_revocation_is_not_kept(database: Database) -> None:
    from runql.auth.revocation import Revocations

    key = await create_key(database, "doomed")
    revocations = Revocations()
    cache = PrincipalCache(database, revocations)
    reading = asyncio.create_task(cache.authenticate(key.secret))
    await asyncio.sleep(0)  # the read is under way
    revocations.revoked(key.row.id)
    assert (await reading) is not None  # read before the revocation committed: the old answer
    assert len(cache) == 0  # but not kept


async def test_another_process_revoking_the_key_is_heard_within_a_second(
    database: Database, settings: Settings
) -> None:
    key = await create_key(database, "doomed")
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with (
        serve(database, settings.replace(workers=0)) as (address, _hub, _streams),
        httpx.AsyncClient(headers=headers) as client,
    ):
        url = f"http://{address}/graphql"
        before = (await client.post(url, json=QUERY)).status_code
        revoked_at = await _revoke_in_another_process(database, key.row.id)
        statuses = []
        while time.monotonic() - revoked_at < 2 * WITHIN_SECONDS:
            statuses.append(
                ((await client.post(url, json=QUERY)).status_code, time.monotonic() - revoked_at)
            )
            await asyncio.sleep(0.05)
    assert before == 200
    refused = [at for status, at in statuses if status == 401]
    assert refused, statuses
    assert refused[0] < WITHIN_SECONDS
    assert all(status == 401 for status, at in statuses if at >= refused[0])


async def test_while_revocations_may_go_unheard_every_request_reads_its_key(
    database: Database,
) -> None:
    """PostgreSQL's LISTEN connection down (or not yet up): a key revoked meanwhile, unheard,
    is refused at once, since nothing is served from the cache until it listens again."""
    from runql.auth.revocation import Revocations

    key = await create_key(database, "doomed")
    revocations = Revocations()
    cache = PrincipalCache(database, revocations)
    assert await cache.authenticate(key.secret) is not None
    assert len(cache) == 1
    revocations.deaf()
    await revoke_key(database, key.row.id)  # another process's revocation, unheard here
    assert await cache.authenticate(key.secret) is None  # read, not served from the cache
    revocations.heard_again()
    assert len(cache) == 0  # what was missed is looked up again
    assert await cache.authenticate(key.secret) is None


async def test_the_read_free_lookup_answers_only_what_is_held_and_heard(
    database: Database,
) -> None:
    """`cached` (the wire's, runql/wire.py) never reads: a key not yet read is None, a read one
    is held (by its secret, too), and a revocation or a deaf notice ends that at once."""
    from runql.auth.revocation import Revocations

    key, other = await create_key(database, "doomed"), await create_key(database, "kept")
    revocations = Revocations()
    cache = PrincipalCache(database, revocations)
    assert cache.cached(key.secret) is None  # never read
    assert await cache.authenticate(key.secret) is not None
    assert await cache.authenticate(other.secret) is not None
    held = cache.cached(key.secret)
    assert held is not None
    assert held.key_id == key.row.id
    assert cache.cached(key.secret) is held  # (by the secret, the second time)
    revocations.deaf()
    assert cache.cached(other.secret) is None
    revocations.heard_again()
    assert await cache.authenticate(key.secret) is not None  # read again after the deaf spell
    assert await cache.authenticate(other.secret) is not None
    assert cache.cached(key.secret) is not None
    revocations.revoked(key.row.id)
    assert cache.cached(key.secret) is None
    assert cache.cached(other.secret) is not None
    assert cache.cached(None) is None
    assert cache.cached("not-a-key") is None
