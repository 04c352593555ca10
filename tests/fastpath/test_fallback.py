"""What the planner does not cover runs on the standard executor, and says so."""

from sqlalchemy import text

from runql.settings import Environment, Settings
from runql.storage.database import Database
from tests.fastpath.conftest import BothExecutors

INTROSPECTION = '{ __type(name: "Run") { name } runs(first: 2) { totalCount } }'


async def test_an_introspection_query_runs_on_the_standard_executor(both: BothExecutors) -> None:
    ran = await both.compare(INTROSPECTION)
    assert ran.executor == "standard"
    assert ran.body["data"]["__type"] == {"name": "Run"}
    assert ran.body["data"]["runs"]["totalCount"] > 0


async def test_a_mutation_runs_on_the_standard_executor(both: BothExecutors) -> None:
    ran = await both.fast(
        'mutation { createAgent(input: {name: "Echo 2", kind: "echo"}) { agent { id name } } }'
    )
    assert ran.executor == "standard"
    assert ran.body["data"]["createAgent"]["agent"]["name"] == "Echo 2"


async def test_errors_of_two_fields_run_on_the_standard_executor(both: BothExecutors) -> None:
    """Their order is the event loop's: the standard executor gives it."""
    query = '{ runs(first: 101) { totalCount } node(id: "nope") { id } }'
    ran = await both.compare(query)
    assert ran.executor == "standard"
    assert [e["extensions"]["field"] for e in ran.body["errors"]] == ["id", "first"]


async def test_a_query_the_planner_covers_runs_on_the_fast_path(both: BothExecutors) -> None:
    assert (await both.compare("{ runs(first: 2) { totalCount } }")).executor == "fast"


async def test_a_database_failure_is_the_standard_executors_to_report(
    both: BothExecutors, demo_database: Database
) -> None:
    async with demo_database.write() as session:
        await session.execute(text("DROP TABLE attachments"))
    ran = await both.fast(
        "{ runs(first: 3) { edges { node { messageGroup { messages { "
        "content { attachments { id } } } } } } } }"
    )
    assert ran.executor == "standard"
    assert {e["extensions"]["code"] for e in ran.body["errors"]} == {"INTERNAL_SERVER_ERROR"}


async def test_production_responses_do_not_say_which_executor_ran(demo_database: Database) -> None:
    production = BothExecutors(demo_database, Settings(env=Environment.PRODUCTION, workers=0))
    ran = await production.compare("{ runs(first: 1) { totalCount } }")
    assert ran.executor is None
    assert ran.body["data"]["runs"]["totalCount"] > 0
