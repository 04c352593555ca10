"""The `runs(filter)` subscription: a dashboard sees the changes that match, new runs too."""

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.storage.tables import DEFAULT_ORG_ID
from tests.subscriptions.client import GraphQLSocket
from tests.subscriptions.conftest import Live

RUNS = "subscription($agent: [ID!]) { runs(filter: {agentId: $agent}) { id agentId status } }"


async def test_a_dashboard_sees_only_matching_runs_through_their_changes(live: Live) -> None:
    other = await catalog.create_agent(
        live.database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Other",
        kind="echo",
        config={"delay_ms": 0},
    )
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    operation = await socket.start(RUNS, {"agent": [live.echo.id]})
    await live.create_run(agent=other)
    run_id = await live.create_run()
    changes: list[dict[str, str]] = []
    while not changes or changes[-1]["status"] != "SUCCESS":
        outcome = await socket.collect(operation, until=1)
        changes += [item["runs"] for item in outcome.data]
    await socket.close()
    assert {change["agentId"] for change in changes} == {live.echo.id}
    assert {change["id"] for change in changes} == {run_id}
    statuses = [change["status"] for change in changes]
    assert statuses[0] == "PENDING"
    assert statuses == sorted(statuses, key=["PENDING", "RUNNING", "SUCCESS"].index)


async def test_dashboards_with_one_filter_each_see_the_changes_in_order(live: Live) -> None:
    sockets = [await GraphQLSocket.open(live.ws_url, live.key) for _ in range(5)]
    operations = [await socket.start(RUNS, {"agent": [live.echo.id]}) for socket in sockets]
    run_id = await live.create_run()
    seen: list[list[tuple[str, str]]] = []
    for socket, operation in zip(sockets, operations, strict=True):
        changes: list[dict[str, str]] = []
        while not changes or changes[-1]["status"] != "SUCCESS":
            outcome = await socket.collect(operation, until=1)
            changes += [item["runs"] for item in outcome.data]
        seen.append([(change["id"], change["status"]) for change in changes])
        await socket.close()
    order = ["PENDING", "RUNNING", "SUCCESS"]
    for pairs in seen:  # changes that arrive together come once, as the run is after them
        statuses = [status for _, status in pairs]
        assert {run for run, _ in pairs} == {run_id}
        assert statuses == sorted(set(statuses), key=order.index)
        assert statuses[-1] == "SUCCESS"
