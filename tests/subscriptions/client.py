"""A small GraphQL-over-websocket client on the `websockets` library, for both protocols."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


@dataclass
class Outcome:
    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    completed: bool = False


class GraphQLSocket:
    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._ids = 0

    @classmethod
    async def open(
        cls,
        url: str,
        key: str | None,
        protocol: str = TRANSPORT_WS,
        payload: dict[str, Any] | None = None,
    ) -> "GraphQLSocket":
        connection = await connect(url, subprotocols=[protocol])  # type: ignore[list-item]
        socket = cls(connection, protocol)
        init = payload if payload is not None else {"Authorization": f"Bearer {key}"}
        await socket.send({"type": "connection_init", "payload": init})
        while True:
            message = await socket.receive()
            if message["type"] == "connection_ack":
                return socket
            if message["type"] not in ("ka", "ping"):
                raise AssertionError(f"expected connection_ack, got {message}")

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.connection.recv())
        return message

    async def start(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        operation_id = str(self._ids)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send(
            {
                "id": operation_id,
                "type": kind,
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def collect(
        self, operation_id: str, *, until: int | None = None, seconds: float = 20
    ) -> Outcome:
        """Results of the operation until it completes (or `until` results arrive)."""
        outcome = Outcome()
        async with asyncio.timeout(seconds):
            while until is None or len(outcome.data) < until:
                message = await self.receive()
                if message.get("id") != operation_id:
                    continue
                kind = message["type"]
                if kind in ("next", "data"):
                    payload = message["payload"]
                    if payload.get("errors"):
                        outcome.errors.extend(payload["errors"])
                    if payload.get("data") is not None:
                        outcome.data.append(payload["data"])
                elif kind == "error":
                    outcome.errors.append(message["payload"])
                    return outcome
                elif kind == "complete":
                    outcome.completed = True
                    return outcome
        return outcome

    async def close(self) -> None:
        await self.connection.close()
