"""What an agent is to runql: given a run and its conversation, it writes a reply."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from runql.enums import ActorType, AttachmentType, ContentPartType


class AgentError(Exception):
    """A failure the agent reports; the run ends in ERROR with this code and message."""

    def __init__(self, code: str, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata = dict(metadata or {})


class InvalidConfig(ValueError):
    """An agent's config does not suit its kind; the message says what to change."""


@dataclass(frozen=True)
class Part:
    text: str
    type: ContentPartType = ContentPartType.TEXT


@dataclass(frozen=True)
class Attachment:
    type: AttachmentType
    file_id: str | None = None
    url: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Turn:
    """One message of the conversation, as an agent reads it."""

    actor_type: ActorType
    actor_name: str
    parts: tuple[Part, ...]
    attachments: tuple[Attachment, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(part.text for part in self.parts)


@dataclass(frozen=True)
class AgentRequest:
    run_id: str
    agent_id: str
    thread_id: str
    message: Turn
    history: tuple[Turn, ...]
    language: str | None = None
    country: str | None = None
    timezone: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raw_inputs: Any = None


@dataclass(frozen=True)
class ReplyMessage:
    parts: tuple[Part, ...]
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class AttachedValue:
    key: str
    value: Any


@dataclass(frozen=True)
class Cost:
    amount: float
    unit: str


@dataclass(frozen=True)
class AgentReply:
    messages: tuple[ReplyMessage, ...]
    attached_items: tuple[AttachedValue, ...] = ()
    cost: Cost | None = None


class Agent(Protocol):
    """One configured agent. `run` may raise AgentError; anything else is reported too. An
    executor keeps one agent per agent and version and runs them concurrently on it."""

    async def run(self, request: AgentRequest) -> AgentReply: ...


class AgentKind(Protocol):
    """A kind of agent (`echo`, `webhook`, or a third party's through the `runql.agents`
    entry-point group): it checks configs and makes agents from them."""

    name: str

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults filled in; raises InvalidConfig."""
        ...

    def create(self, config: Mapping[str, Any]) -> Agent: ...


@runtime_checkable
class ReachesOut(Protocol):
    """A kind whose agents connect to addresses their config names (see `runql.agents.egress`)."""

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        """Raises InvalidConfig when the checked `config` names an address that is refused."""
        ...


@runtime_checkable
class Closable(Protocol):
    """An agent that holds resources (a webhook's connections): closed once no run needs it."""

    async def aclose(self) -> None: ...
