"""`cost.amount` is written as the spec's example writes it: a whole amount as a JSON integer
(`1`, not `1.0`), a fractional one as it is (`2.85`), on every API: GraphQL on the standard
executor, the fast path and the fast lane, and REST (one run and a page of runs)."""

import json

import httpx
import pytest
from sqlalchemy import text

from runql.app import create_app
from runql.encoding import number
from runql.schema.execution import StandardExecutor
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.conftest import GraphQLClient
from tests.fastpath.conftest import BothExecutors
from tests.fastpath.test_lane import endpoint_of
from tests.rest.conftest import all_runs

# amount -> how JSON shows it
AMOUNTS = {1.0: "1", 2.85: "2.85", 0.0: "0", 250.0: "250", 0.5: "0.5"}
RUN_COST = "query($id: ID!) { run(id: $id) { id cost { amount unit } } }"


@pytest.fixture
async def costed(demo_database: Database) -> dict[str, float]:
    """Runs with each amount of AMOUNTS, by id."""
    runs: list[RunRow] = (await all_runs(demo_database))[: len(AMOUNTS)]
    async with demo_database.engine.begin() as connection:
        for run, amount in zip(runs, AMOUNTS, strict=True):
            await connection.execute(
                text("UPDATE runs SET cost_amount = :amount, cost_unit = 'credits' WHERE id = :id"),
                {"amount": amount, "id": run.id},
            )
    return {run.id: amount for run, amount in zip(runs, AMOUNTS, strict=True)}


def _shown(body: str) -> str:
    """The amount as the JSON text writes it."""
    start = body.index('"amount":') + len('"amount":')
    return body[start : body.index(",", start)].strip()


def test_whole_amounts_are_integers_and_the_rest_stay_as_they_are() -> None:
    assert [(number(value), type(number(value))) for value in (1.0, -3.0, 0.0, 2.85)] == [
        (1, int),
        (-3, int),
        (0, int),
        (2.85, float),
    ]
    assert type(number(2.0**60)) is float  # past 2**53 an integer would claim digits it has not


async def test_graphql_writes_whole_amounts_as_integers_on_both_executors(
    demo_database: Database, settings: Settings, costed: dict[str, float]
) -> None:
    both = BothExecutors(demo_database, settings)
    without_fast_path = GraphQLClient(demo_database, settings.replace(fastpath=False))
    assert without_fast_path.schema.execution_context_class is StandardExecutor
    for run_id, amount in costed.items():
        ran = await both.compare(RUN_COST, {"id": run_id})  # the same text on both executors
        assert ran.executor == "fast"
        assert _shown(ran.text) == AMOUNTS[amount]
        assert ran.body["data"]["run"]["cost"]["amount"] == amount
        alone = await without_fast_path(RUN_COST, {"id": run_id})  # RUNQL_FASTPATH=0
        assert _shown(json.dumps(alone["data"])) == AMOUNTS[amount]


async def test_the_fast_lane_writes_whole_amounts_as_integers(
    demo_database: Database, api_key: str, costed: dict[str, float]
) -> None:
    app = create_app(Settings(env=Environment.PRODUCTION, workers=0), demo_database)
    lane = endpoint_of(app).lane
    assert lane is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:
        for run_id, amount in costed.items():
            served = lane.served
            response = await client.post(
                "/graphql", json={"query": RUN_COST, "variables": {"id": run_id}}
            )
            assert lane.served == served + 1
            assert _shown(response.text) == AMOUNTS[amount], response.text


async def test_rest_writes_whole_amounts_as_integers(
    http: httpx.AsyncClient, costed: dict[str, float]
) -> None:
    listed = (await http.get("/runs", params={"id": ",".join(costed)})).json()["items"]
    assert {item["id"] for item in listed} == set(costed)
    for run_id, amount in costed.items():
        response = await http.get(f"/runs/{run_id}")
        assert _shown(response.text) == AMOUNTS[amount], response.text
        [item] = [item for item in listed if item["id"] == run_id]
        assert _shown(json.dumps(item, separators=(",", ":"))) == AMOUNTS[amount]
