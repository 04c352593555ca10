"""The feed query is batched: the same statements for 10 runs as for 100, and 7 of them."""

from pathlib import Path

import pytest

from runql.demo import load_demo
from runql.storage.database import Database
from tests.conftest import DEMO_NOW, GraphQLClient

FEED = (Path(__file__).resolve().parents[2] / "queries" / "feed.graphql").read_text()


@pytest.fixture
async def big_gql(database: Database, gql_empty: GraphQLClient) -> GraphQLClient:
    await load_demo(database, runs=260, seed=3, now=DEMO_NOW)
    return gql_empty


async def _statements(gql: GraphQLClient, first: int) -> int:
    body = await gql(FEED, {"first": first})
    assert "errors" not in body, body["errors"]
    assert len(body["data"]["runs"]["edges"]) == first
    sql = body["extensions"]["sql"]
    assert sql["ms"] >= 0
    return int(sql["statements"])


async def test_feed_statements_do_not_grow_with_the_page(big_gql: GraphQLClient) -> None:
    assert await _statements(big_gql, 10) == await _statements(big_gql, 100)


async def test_feed_runs_seven_statements_on_sqlite_and_eleven_on_postgresql(
    database: Database, big_gql: GraphQLClient
) -> None:
    """The runs page (with each run's agent and its two message groups joined), its count,
    the errors, the attached items (their actors joined), the messages (their actors and
    contents joined), the content parts and the attachments. PostgreSQL plans each statement
    for its parameters, where a join costs more to plan than a statement of its own
    (runql/fastpath/fetch.py `_folds`): there the joined rows are read apart."""
    assert await _statements(big_gql, 100) == (7 if database.is_sqlite else 11)


async def test_naive_loading_would_grow(database: Database, big_gql: GraphQLClient) -> None:
    """The count above is the batching's doing: unbatched loaders run far more statements."""
    from runql.resolvers.context import Context
    from runql.resolvers.loaders import Loaders
    from runql.storage.tables import DEFAULT_ORG_ID

    context = Context(
        database=database,
        settings=big_gql.settings,
        org_id=DEFAULT_ORG_ID,
        loaders=Loaders(database, DEFAULT_ORG_ID, batch_size=1),
    )
    result = await big_gql.schema.execute(
        FEED, variable_values={"first": 50}, context_value=context
    )
    assert result.errors is None
    assert result.extensions is not None
    assert result.extensions["sql"]["statements"] > 100


async def test_production_responses_carry_no_sql_statistics(database: Database) -> None:
    from runql.settings import Environment, Settings

    gql = GraphQLClient(database, Settings(env=Environment.PRODUCTION))
    body = await gql("{ runs(first: 1) { totalCount } }")
    assert "sql" not in body.get("extensions", {})
