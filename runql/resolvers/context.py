"""What every resolver receives: the database, this request's loaders, the settings."""

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from runql.agents.registry import AgentRegistry, default_registry
from runql.resolvers.loaders import Loaders
from runql.settings import Settings
from runql.storage.database import Database


@dataclass
class Context:
    database: Database
    settings: Settings
    loaders: Loaders
    agents: AgentRegistry = field(default_factory=default_registry)
    request: Request | WebSocket | None = None
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None

    @classmethod
    def create(
        cls,
        database: Database,
        settings: Settings,
        request: Request | WebSocket | None = None,
        response: Response | WebSocket | None = None,
    ) -> "Context":
        return cls(database, settings, Loaders(database), request=request, response=response)


Info = strawberry.Info[Context, None]
