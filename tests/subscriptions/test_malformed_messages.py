"""Websocket messages are read by the HTTP bodies' parser, and operations chosen as over HTTP:
a message with a key twice or nested too deep closes graphql-transport-ws with 4400 (not an
unhandled exception); two operations without operationName, or a name that names none, is an
`error` with BAD_REQUEST on both protocols, and the socket stays usable."""

from typing import Any

import pytest

from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live
from tests.subscriptions.test_protocol import _close_code, _init

TWO_SUBSCRIPTIONS = (
    "subscription A($id: ID!) { runStatus(id: $id) { status } } "
    "subscription B($id: ID!) { runStatus(id: $id) { id } }"
)


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "ping", "type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}}',
        '{"type": "ping", "payload": ' + "[" * 3000 + "]" * 3000 + "}",
        '{"type": "ping", "payload": {"a": NaN}}',
        "1",
        "[]",
        '"ping"',
        "null",
    ],
    ids=["duplicate-key", "3000-deep", "nan", "number", "array", "string", "null"],
)
async def test_a_malformed_message_closes_with_4400(quiet_live: Live, message: str) -> None:
    assert await _close_code(quiet_live.ws_url, [_init(quiet_live.key), message]) == 4400


async def _errors_of(
    socket: GraphQLSocket, query: str, variables: dict[str, Any], operation_name: str | None
) -> list[dict[str, Any]]:
    kind = "subscribe" if socket.protocol == TRANSPORT_WS else "start"
    await socket.send(
        {
            "id": "x",
            "type": kind,
            "payload": {"query": query, "variables": variables, "operationName": operation_name},
        }
    )
    outcome = await socket.collect("x", seconds=10)
    errors: list[dict[str, Any]] = []
    for error in outcome.errors:  # an `error` message's payload is a list, or one error
        errors.extend(error if isinstance(error, list) else [error])
    return errors


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize(
    ("operation_name", "says"),
    [(None, "say which to run with operationName"), ("Nope", 'Unknown operation named "Nope"')],
    ids=["no-name", "unknown-name"],
)
async def test_an_unresolved_operation_is_bad_request(
    quiet_live: Live, protocol: str, operation_name: str | None, says: str
) -> None:
    run_id = await quiet_live.create_run()
    socket = await GraphQLSocket.open(quiet_live.ws_url, quiet_live.key, protocol)
    try:
        errors = await _errors_of(socket, TWO_SUBSCRIPTIONS, {"id": run_id}, operation_name)
        assert [e["extensions"]["code"] for e in errors] == ["BAD_REQUEST"], errors
        assert says in errors[0]["message"]

        named = await socket.start(TWO_SUBSCRIPTIONS.split(" subscription B")[0], {"id": run_id})
        assert (await socket.collect(named, until=1, seconds=10)).data  # still usable
    finally:
        await socket.close()
