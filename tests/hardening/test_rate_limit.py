"""The rate limit per API key: a token bucket; over it, 429 RATE_LIMITED with Retry-After."""

import asyncio

from runql.auth.keys import create_key
from runql.security.ratelimit import RateLimits
from runql.settings import Settings
from runql.storage.database import Database
from tests.hardening.conftest import MakeClient, codes

QUERY = {"query": "{ runs(first: 1) { totalCount } }"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_defaults_are_100_a_second_with_bursts_of_1000() -> None:
    settings = Settings()

    assert (settings.rate_limit_per_second, settings.rate_limit_burst) == (100.0, 1000)


def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    clock = Clock()
    limits = RateLimits(rate=2.0, burst=3, clock=clock)

    assert [limits.wait("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.wait("k") == 0.5
    clock.now += 0.5
    assert limits.wait("k") == 0.0
    assert limits.wait("k") == 0.5


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    limits = RateLimits(rate=10.0, burst=2, clock=clock)
    limits.wait("k")
    clock.now += 3600

    assert [limits.wait("k") > 0 for _ in range(3)] == [False, False, True]


async def test_over_the_limit_a_key_gets_429_with_retry_after(client_with: MakeClient) -> None:
    http = await client_with(rate_limit_per_second=0.5, rate_limit_burst=2)

    statuses = [(await http.post("/graphql", json=QUERY)).status_code for _ in range(2)]
    refused = await http.post("/graphql", json=QUERY)

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    assert codes(refused.json()) == ["RATE_LIMITED"]
    assert "retry after 2 s" in refused.json()["errors"][0]["message"]


async def test_each_key_has_its_own_bucket(
    client_with: MakeClient, demo_database: Database
) -> None:
    http = await client_with(rate_limit_per_second=0.5, rate_limit_burst=1)
    other = (await create_key(demo_database, "other")).secret

    assert (await http.post("/graphql", json=QUERY)).status_code == 200
    assert (await http.post("/graphql", json=QUERY)).status_code == 429
    response = await http.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 200


async def test_the_bucket_refills_at_its_rate(client_with: MakeClient) -> None:
    http = await client_with(rate_limit_per_second=20.0, rate_limit_burst=1)

    assert (await http.post("/graphql", json=QUERY)).status_code == 200
    refused = await http.post("/graphql", json=QUERY)
    await asyncio.sleep(0.1)  # 0.05 s makes a token
    again = await http.post("/graphql", json=QUERY)

    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    assert again.status_code == 200


async def test_a_request_without_a_key_is_401_not_counted(client_with: MakeClient) -> None:
    http = await client_with(rate_limit_per_second=0.5, rate_limit_burst=1)

    for _ in range(3):
        anonymous = await http.post("/graphql", json=QUERY, headers={"Authorization": ""})
        assert anonymous.status_code == 401
    assert (await http.post("/graphql", json=QUERY)).status_code == 200
