"""What every resolver receives: the database, this request's loaders, the settings."""

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from runql.agents.egress import EgressPolicy
from runql.agents.registry import AgentRegistry, default_registry
from runql.bus.hub import Hub
from runql.bus.shared import SharedReads
from runql.fanout.streams import Lead, SharedStreams
from runql.resolvers.loaders import Loaders
from runql.settings import Settings
from runql.storage.database import Database


@dataclass
class Context:
    database: Database
    settings: Settings
    org_id: str
    loaders: Loaders
    agents: AgentRegistry = field(default_factory=default_registry)
    hub: Hub | None = None
    shared: SharedReads | None = None
    request: Request | WebSocket | None = None
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    streams: SharedStreams | None = None  # subscriptions on websockets share executions here
    lead: Lead | None = None  # set when a shared stream runs the subscription
    key_id: str = ""  # the API key a websocket authenticated with

    @classmethod
    def create(
        cls,
        database: Database,
        settings: Settings,
        org_id: str,
        request: Request | WebSocket | None = None,
        response: Response | WebSocket | None = None,
        hub: Hub | None = None,
        shared: SharedReads | None = None,
        streams: SharedStreams | None = None,
        lead: Lead | None = None,
    ) -> "Context":
        return cls(
            database,
            settings,
            org_id,
            Loaders(database, org_id),
            default_registry(EgressPolicy.from_settings(settings)),
            request=request,
            response=response,
            hub=hub,
            shared=shared,
            streams=streams,
            lead=lead,
        )

    def authenticate(self, org_id: str, key_id: str) -> None:
        """Open the organization for this (websocket) context, once its key is checked."""
        self.org_id = org_id
        self.key_id = key_id
        self.refresh_loaders()

    def refresh_loaders(self) -> None:
        """Forget what the loaders hold. A websocket's context lives as long as the socket,
        so each event of a subscription gets fresh loaders: no stale rows."""
        self.loaders = Loaders(self.database, self.org_id)


Info = strawberry.Info[Context, None]
