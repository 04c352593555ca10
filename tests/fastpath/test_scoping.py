"""The fast path reads the caller's organization only, and hides agents' secrets, as the
standard path does."""

from runql.auth.keys import organization
from runql.demo import load_demo
from runql.settings import Settings
from runql.storage.database import Database
from tests.conftest import DEMO_NOW
from tests.fastpath.conftest import BothExecutors, DemoIds
from tests.fastpath.test_documents import DOCUMENTS

FEED_IDS = "{ runs(first: 100) { totalCount edges { node { id agent { id } } } } }"


async def test_another_organization_sees_none_of_the_demo_data(
    demo_database: Database, settings: Settings, demo_ids: DemoIds
) -> None:
    other = await organization(demo_database, "Other")
    await load_demo(demo_database, runs=6, seed=5, now=DEMO_NOW, org_id=other.id)
    theirs = BothExecutors(demo_database, settings, other.id)

    feed = await theirs.compare(DOCUMENTS["feed"], {"first": 100})
    assert feed.executor == "fast"
    assert feed.body["data"]["runs"]["totalCount"] == 6

    ids = [values[0] for values in demo_ids.by_kind.values()]
    nodes = await theirs.compare(DOCUMENTS["node"], {"ids": ids})
    assert nodes.body["data"]["nodes"] == [None] * len(ids)
    run = await theirs.compare(DOCUMENTS["run-detail"], {"id": demo_ids.by_kind["run"][0]})
    assert run.body["data"]["run"] is None

    ours = await BothExecutors(demo_database, settings).compare(FEED_IDS)
    mine = {edge["node"]["id"] for edge in ours.body["data"]["runs"]["edges"]}
    theirs_ids = {edge["node"]["id"] for edge in feed.body["data"]["runs"]["edges"]}
    assert mine
    assert theirs_ids
    assert not mine & theirs_ids


async def test_agent_config_hides_secrets_on_both_paths(both: BothExecutors) -> None:
    created = await both.fast(
        'mutation { createAgent(input: {name: "Hooked", kind: "webhook", config: '
        '{url: "https://user:pw@hooks.example.com/run", headers: {Authorization: "Bearer s3"}}})'
        " { agent { id } } }"
    )
    agent_id = created.body["data"]["createAgent"]["agent"]["id"]
    ran = await both.compare(
        "query($id: ID!) { agent(id: $id) { config } "
        "agents(first: 100) { edges { node { id config } } } }",
        {"id": agent_id},
    )
    assert ran.executor == "fast"
    config = ran.body["data"]["agent"]["config"]
    assert config["headers"] == {"Authorization": "[hidden]"}
    assert config["url"] == "https://[hidden]@hooks.example.com/run"
