"""To-one relations read in their parent's statement (a join) answer as the standard
executor's loaders do, also where the relation finds nothing in the caller's organization,
and the number of statements stays the query's: a missing row costs no statement of its own."""

from typing import Any

from sqlalchemy import event, text

from runql.auth.keys import organization
from runql.demo import load_demo
from runql.settings import Settings
from runql.storage.database import Database
from tests.conftest import DEMO_NOW, GraphQLClient
from tests.fastpath.conftest import BothExecutors
from tests.fastpath.test_documents import DOCUMENTS

FEED_FIRST = 10


async def _statements(database: Database, settings: Settings) -> int:
    body = await GraphQLClient(database, settings)(DOCUMENTS["feed"], {"first": FEED_FIRST})
    assert body["extensions"]["executor"] == "fast"
    return int(body["extensions"]["sql"]["statements"])


async def _first_ids(database: Database, sql: str) -> list[str]:
    async with database.engine.connect() as connection:
        return [row[0] for row in await connection.execute(text(sql))]


async def test_relations_to_another_organization_are_null_in_the_same_statements(
    demo_database: Database, settings: Settings, both: BothExecutors
) -> None:
    before = await _statements(demo_database, settings)
    other = await organization(demo_database, "Other")
    await load_demo(demo_database, runs=3, seed=5, now=DEMO_NOW, org_id=other.id)
    theirs = f"WHERE org_id = '{other.id}' ORDER BY id LIMIT 1"
    their_group = (await _first_ids(demo_database, f"SELECT id FROM message_groups {theirs}"))[0]
    ours = await both.standard(
        "query($first: Int!) { runs(first: $first) { edges { node { id messageGroup { id } } } } }",
        {"first": FEED_FIRST},
    )
    nodes = [edge["node"] for edge in ours.body["data"]["runs"]["edges"]]
    run_id = next(node["id"] for node in nodes if node["messageGroup"] is not None)
    async with demo_database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE runs SET message_group_id = :group WHERE id = :id"),
            {"group": their_group, "id": run_id},
        )

    ran = await both.compare(DOCUMENTS["feed"], {"first": FEED_FIRST})
    assert ran.executor == "fast"
    edges = ran.body["data"]["runs"]["edges"]
    assert (
        next(edge for edge in edges if edge["node"]["id"] == run_id)["node"]["messageGroup"] is None
    )
    assert await _statements(demo_database, settings) == before


async def test_a_relation_under_a_relation_is_read_as_before(both: BothExecutors) -> None:
    """Folds go one level: a relation of a joined row (a group's thread, its parent group)
    is fetched on its own, for all the rows at once."""
    query = (
        "query($first: Int!) { runs(first: $first) { edges { node { id agent { id name } "
        "messageGroup { id thread { id createdAt agent { id } } parent { id } messages { "
        "id actor { id } content { id parts { id } } messageGroup { id } } } } } } }"
    )
    ran = await both.compare(query, {"first": 30})
    assert ran.executor == "fast"
    assert any(edge["node"]["messageGroup"] for edge in ran.body["data"]["runs"]["edges"])


async def test_postgresql_reads_each_relation_in_a_statement_of_its_own(
    demo_database: Database, settings: Settings, both: BothExecutors
) -> None:
    """PostgreSQL plans every statement for its parameters: a join costs it more to plan than
    the joined table's own statement, so there the feed's statements join nothing (and the
    answer is the standard executor's); SQLite, which plans a join cheaply, keeps its folds."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = demo_database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await _statements(demo_database, settings)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    joins = [statement for statement in seen if " JOIN " in statement]
    if demo_database.is_sqlite:
        assert joins
    else:
        assert seen
        assert not joins
    ran = await both.compare(DOCUMENTS["feed"], {"first": FEED_FIRST})
    assert ran.executor == "fast"
