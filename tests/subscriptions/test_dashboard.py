"""The `runs(filter)` subscription: a dashboard sees the changes that match, new runs too."""

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.storage.tables import DEFAULT_ORG_ID
from tests.subscriptions.client import GraphQLSocket
from tests.subscriptions.conftest import Live

RUNS = "subscription($agent: [ID!]) { runs(filter: {agentId: $agent}) { id agentId status } }"


async def test_a_dashboard_sees_only_matching_runs_through_their_changes(live: Live) -> None:
    other = await catalog.create_agent(live.database, default_registry(), DEFAULT_ORG_ID,
                                       name="Other", kind="echo", config={"delay_ms": 0})
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    operation = await socket.start(RUNS, {"agent": [live.echo.id]})
    await live.create_run(agent=other)
    run_id = await live.create_run()
    changes = []
    while not changes or changes[-1]["status"] != "SUCCESS":
        outcome = await socket.collect(operation, until=1)
        changes += [item["runs"] for item in outcome.data]
    await socket.close()
    assert {change["agentId"] for change in changes} == {live.echo.id}
    assert {change["id"] for change in changes} == {run_id}
    statuses = [change["status"] for change in changes]
    assert statuses[0] == "PENDING"
    assert statuses == sorted(statuses, key=["PENDING", "RUNNING", "SUCCESS"].index)
