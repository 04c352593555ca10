"""The websocket transport: authentication, origins, limits and the protocols' close codes."""

import asyncio
import json
from collections.abc import Mapping, Sequence

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from runql.settings import Settings
from runql.storage.database import Database
from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live, live_server, serve

RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"


async def _close_code(
    url: str, messages: Sequence[Mapping[str, object] | str], protocol: str = TRANSPORT_WS
) -> int:
    async with connect(url, subprotocols=[protocol]) as socket:  # type: ignore[list-item]
        for message in messages:
            await socket.send(message if isinstance(message, str) else json.dumps(message))
        with pytest.raises(ConnectionClosed) as closed:
            await _read_until_closed(socket)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def _read_until_closed(socket: ClientConnection) -> None:
    async with asyncio.timeout(10):
        while True:
            await socket.recv()


def _init(key: str) -> dict[str, object]:
    return {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}


def _subscribe(operation_id: str, run_id: str) -> dict[str, object]:
    return {
        "id": operation_id,
        "type": "subscribe",
        "payload": {"query": RUN_STATUS, "variables": {"id": run_id}},
    }


async def test_a_bad_message_closes_with_4400(live: Live) -> None:
    assert await _close_code(live.ws_url, [_init(live.key), "{not json"]) == 4400


async def test_subscribing_before_the_ack_closes_with_4401(live: Live) -> None:
    run_id = await live.create_run()
    assert await _close_code(live.ws_url, [_subscribe("1", run_id)]) == 4401


async def test_a_duplicate_operation_id_closes_with_4409(quiet_live: Live) -> None:
    run_id = await quiet_live.create_run()
    messages = [_init(quiet_live.key), _subscribe("1", run_id), _subscribe("1", run_id)]
    assert await _close_code(quiet_live.ws_url, messages) == 4409


async def test_a_second_init_closes_with_4429(live: Live) -> None:
    assert await _close_code(live.ws_url, [_init(live.key), _init(live.key)]) == 4429


async def test_no_init_in_time_closes_with_4408(live: Live) -> None:
    assert await _close_code(live.ws_url, []) == 4408  # the fixture's timeout is 1 s


@pytest.mark.parametrize(
    "payload", [{}, {"Authorization": "Bearer runql_sk_nope"}, {"Authorization": "Basic abc"}]
)
async def test_a_missing_or_bad_key_closes_with_4403(live: Live, payload: dict[str, str]) -> None:
    message = {"type": "connection_init", "payload": payload}
    assert await _close_code(live.ws_url, [message]) == 4403


async def test_the_upgrade_request_header_authenticates_too(live: Live) -> None:
    run_id = await live.create_run()
    async with connect(
        live.ws_url,
        subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {live.key}"},
    ) as raw:
        socket = GraphQLSocket(raw, TRANSPORT_WS)
        await socket.send({"type": "connection_init", "payload": {}})
        assert (await socket.receive())["type"] == "connection_ack"
        outcome = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}))
    assert outcome.completed


async def test_the_legacy_protocol_refuses_a_bad_key_its_own_way(live: Live) -> None:
    """graphql-ws (subscriptions-transport-ws) answers connection_error, then closes."""
    async with connect(live.ws_url, subprotocols=[LEGACY_WS]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        refusal = json.loads(await socket.recv())
        with pytest.raises(ConnectionClosed):
            await _read_until_closed(socket)
    assert refusal["type"] == "connection_error"
    assert "API key" in refusal["payload"]["reason"]


async def test_another_organizations_run_is_not_found(live: Live) -> None:
    from runql.auth.keys import create_key

    run_id = await live.create_run()
    stranger = (await create_key(live.database, "stranger", "acme")).secret
    socket = await GraphQLSocket.open(live.ws_url, stranger)
    outcome = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}))
    missing = await socket.collect(
        await socket.start(RUN_STATUS, {"id": "run_AAAAAAAAAAAAAAAAAAAA"})
    )
    await socket.close()
    assert outcome.data == []
    foreign, unknown = outcome.errors[0], missing.errors[0]
    assert foreign["extensions"] == unknown["extensions"] == {"code": "NOT_FOUND", "field": "id"}
    assert foreign["message"].replace(run_id, "<id>") == unknown["message"].replace(
        "run_AAAAAAAAAAAAAAAAAAAA", "<id>"
    )  # a foreign id answers as a missing one


async def test_cross_origin_handshakes_need_an_allowed_origin(
    database: Database, live_settings: Settings
) -> None:
    allowed = live_settings.replace(allowed_origins=("https://app.example.com",))
    async with serve(database, allowed) as (address, _hub, _streams):
        url = f"ws://{address}/graphql"
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                url,
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                origin="https://evil.example.com",  # type: ignore[arg-type]
            )
        assert refused.value.response.status_code == 403
        async with connect(
            url,
            subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
            origin="https://app.example.com",  # type: ignore[arg-type]
        ):
            pass


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscriptions_per_connection_are_capped_with_a_code(
    database: Database, live_settings: Settings, protocol: str
) -> None:
    capped = live_settings.replace(workers=0, ws_max_subscriptions=2)
    async with live_server(database, capped, "cap") as server:
        key = server.key
        run_id = await server.create_run()
        socket = await GraphQLSocket.open(server.ws_url, key, protocol)
        for _ in range(2):
            first = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}), until=1)
            assert first.data == [{"runStatus": {"status": "PENDING"}}]
        third = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}))
        await socket.close()
    error = third.errors[0][0] if protocol == TRANSPORT_WS else third.errors[0]
    assert error["message"].startswith("Subscription limit reached")
    assert error["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS", "maximum": 2}


async def test_a_message_id_that_is_not_a_string_closes_with_4400(quiet_live: Live) -> None:
    run_id = await quiet_live.create_run()
    numeric = {
        "id": 1,
        "type": "subscribe",
        "payload": {"query": RUN_STATUS, "variables": {"id": run_id}},
    }
    assert await _close_code(quiet_live.ws_url, [_init(quiet_live.key), numeric]) == 4400
