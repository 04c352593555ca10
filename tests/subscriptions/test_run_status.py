"""runStatus and runEvents over both websocket protocols, against a real server."""

import pytest

from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live

RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { id status } }"
RUN_EVENTS = """subscription($id: ID!, $after: Int) { runEvents(runId: $id, after: $after) {
  seq type payload createdAt run { id status } } }"""


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_run_status_shows_every_status_then_completes(live: Live, protocol: str) -> None:
    run_id = await live.create_run()
    socket = await GraphQLSocket.open(live.ws_url, live.key, protocol)
    outcome = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}))
    await socket.close()
    statuses = [item["runStatus"]["status"] for item in outcome.data]
    assert outcome.errors == []
    assert outcome.completed
    assert statuses[-1] == "SUCCESS"
    assert statuses == ["PENDING", "RUNNING", "SUCCESS"][-len(statuses) :]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_run_events_replays_then_follows_with_fresh_nested_data(
    live: Live, protocol: str
) -> None:
    run_id = await live.create_run()
    socket = await GraphQLSocket.open(live.ws_url, live.key, protocol)
    outcome = await socket.collect(await socket.start(RUN_EVENTS, {"id": run_id}))
    await socket.close()
    events = [item["runEvents"] for item in outcome.data]
    assert outcome.completed
    assert [event["seq"] for event in events] == [1, 2, 3, 4]
    assert [event["type"] for event in events] == [
        "STATUS_CHANGED",
        "STATUS_CHANGED",
        "MESSAGE_ADDED",
        "STATUS_CHANGED",
    ]
    assert [e["payload"].get("status") for e in events] == ["pending", "running", None, "success"]
    assert events[-1]["run"]["status"] == "SUCCESS"  # loaders are fresh for every event


async def test_a_finished_run_replays_and_completes_at_once(live: Live) -> None:
    run_id = await live.create_run()
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    first = await socket.collect(await socket.start(RUN_EVENTS, {"id": run_id}))
    assert first.completed
    again = await socket.collect(await socket.start(RUN_EVENTS, {"id": run_id, "after": 2}))
    status = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}))
    done = await socket.collect(
        await socket.start(RUN_EVENTS, {"id": run_id, "after": 4}), seconds=5
    )
    await socket.close()
    assert [item["runEvents"]["seq"] for item in again.data] == [3, 4]
    assert [item["runStatus"]["status"] for item in status.data] == ["SUCCESS"]
    assert status.completed
    assert done.completed
    assert done.data == []


async def test_a_whole_cost_is_an_integer_in_subscription_payloads(live: Live) -> None:
    """The echo agent's runs cost 0 credits: written `0`, as every API writes a whole amount."""
    run_id = await live.create_run()
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    status = await socket.collect(
        await socket.start(
            "subscription($id: ID!) { runStatus(id: $id) { status cost { amount unit } } }",
            {"id": run_id},
        )
    )
    await socket.close()
    final = status.data[-1]["runStatus"]
    assert final["status"] == "SUCCESS"
    assert final["cost"] == {"amount": 0, "unit": "credits"}
    assert type(final["cost"]["amount"]) is int  # the frame said 0, not 0.0
