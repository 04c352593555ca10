"""Settings: each `RUNQL_*` environment variable declared once, with its type, default, allowed
values and meaning (the README's settings table is rendered from these declarations:
`runql settings-table`, checked by tests/hardening/test_settings.py).

`Settings.from_env()` reads the environment; `Settings(...)` takes only what it is given, so a
test's settings never pick up a developer's RUNQL_* variables; `settings.replace(...)` changes
some and checks them again. A value out of range stops `from_env` and `replace` with
SettingsError, naming the variable and what it allows. A flag is 0, 1, false, true, no or yes
(any case); any other word is refused rather than read as either."""

import ipaddress
import os
from collections.abc import Mapping
from enum import Enum, StrEnum
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Self, TypeAlias, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le
from pydantic import BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from runql.text import JsonCaps

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
PREFIX = "RUNQL_"
FLAG_WORDS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    pass


def _flag(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return FLAG_WORDS[value.strip().lower()]
    except KeyError:
        raise ValueError("not a flag") from None


def _lowered(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _comma_separated(value: object) -> object:
    if not isinstance(value, str):
        return value
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _none_if_empty(value: object) -> object:
    return value or None


Flag = Annotated[bool, BeforeValidator(_flag)]
Switch = Annotated[bool | None, BeforeValidator(_flag)]  # None: on in development only
LogFormat = Annotated[Literal["json", "text"], BeforeValidator(_lowered)]
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lowered)]
CommaSeparated = BeforeValidator(_comma_separated)
FOR_BOTH_ENVIRONMENTS = "on in development, off in production"


def _shown(when_unset: str) -> dict[str, Any]:
    """What the README says of a default that depends on something else."""
    return {"when_unset": when_unset}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this system (macOS)
        return os.cpu_count() or 1


MAX_IN_FLIGHT = 1000  # the default's ceiling: runs one process executes at once


def default_in_flight() -> int:
    """Runs one process executes at once unless told: agents mostly wait (a language model
    answers in seconds), so many; each may hold a socket to its agent, so a quarter of the
    process's file descriptor limit at most, and MAX_IN_FLIGHT (1000 with the usual limits of
    a server, 256 with a 1024-descriptor limit)."""
    try:
        import resource

        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):  # no such limit on this system
        return MAX_IN_FLIGHT
    if descriptors == resource.RLIM_INFINITY:
        return MAX_IN_FLIGHT
    return max(4, min(MAX_IN_FLIGHT, descriptors // 4))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="forbid", enable_decoding=False, allow_inf_nan=False
    )

    database_url: str = Field(
        default="sqlite+aiosqlite:///./runql.db", description="the database (SQLAlchemy URL)"
    )
    env: Environment = Field(
        default=Environment.PRODUCTION,
        description="`development` adds `extensions.sql` to responses; `make run` sets it",
    )
    host: str = Field(default="127.0.0.1", description="address `runql serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="port `runql serve` listens on")
    db_pool_size: int = Field(default=5, ge=1, description="connections kept open per process")
    db_max_overflow: int = Field(
        default=5, ge=0, description="connections opened beyond the pool under load"
    )
    workers: int = Field(
        default_factory=default_in_flight,
        ge=0,
        json_schema_extra=_shown("a quarter of the file descriptor limit, at most 1000"),
        description="runs each server process executes at once, claimed in batches as room "
        "frees (0: no workers in the server); not the number of processes",
    )
    serve_workers: int | None = Field(
        default=None,
        ge=1,
        json_schema_extra=_shown("one per core in production, 1 in development"),
        description="processes `runql serve` runs on its port (`--workers N` overrides it)",
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="how long a worker's claim on a run lasts unless renewed"
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, description="how often idle workers look for runs and expired leases"
    )
    agent_timeout_seconds: float = Field(
        default=300.0, gt=0, description="how long an agent may take before its run ends in `ERROR`"
    )
    egress_allowed_cidrs: Annotated[tuple[Network, ...] | None, CommaSeparated] = Field(
        default=None,
        json_schema_extra={
            **_shown("loopback in development, none in production"),
            "allowed": "networks such as 10.0.0.0/8 or fd00::/8, comma-separated, without "
            "host bits",
        },
        description="comma-separated networks (`10.0.0.0/8,fd00::/8`) agents may reach "
        "although they are internal ([Limits and hardening](#limits-and-hardening))",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, gt=0, description="how long shutdown lets running agents finish"
    )
    max_content_bytes: int = Field(
        default=1024 * 1024, ge=1, description="the largest message content `createRun` takes"
    )
    max_json_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        description="the largest `metadata`, `rawInputs` (each) or attached item value, as JSON",
    )
    max_json_depth: int = Field(
        default=16, ge=1, description="levels of objects and lists those values may nest"
    )
    dev_key_file: str = Field(
        default=".runql-dev-key", description="where development keeps its API key"
    )
    ws_init_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="how long a websocket (either protocol) may wait before "
        "`connection_init` (then 4408)",
    )
    ws_keep_alive_seconds: float = Field(
        default=15.0, gt=0, description="keep-alive interval of the legacy `graphql-ws` protocol"
    )
    ws_max_subscriptions: int = Field(
        default=100,
        ge=1,
        description="operations one websocket may run at once (then `TOO_MANY_SUBSCRIPTIONS`)",
    )
    ws_compression: Flag = Field(
        default=False, description="`1` turns on permessage-deflate (costs CPU on every message)"
    )
    ws_shared_streams: Flag = Field(
        default=True,
        description="`0` makes every subscriber run its own execution (runql/fanout/ "
        "off; bench/subscribers.py compares)",
    )
    allowed_origins: Annotated[tuple[str, ...], CommaSeparated] = Field(
        default=(),
        json_schema_extra={**_shown("none"), "allowed": "origins, comma-separated"},
        description="comma-separated origins allowed to open cross-origin websockets",
    )
    subscriber_queue_size: int = Field(
        default=1000, ge=1, description="notices a subscriber may fall behind before it is cut off"
    )
    ws_max_backlog_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="bytes a client of a shared stream may leave "
        "unread before it is cut off (1013)",
    )
    max_depth: int = Field(default=12, ge=1, description="levels of fields an operation may nest")
    max_aliases: int = Field(default=15, ge=1, description="aliases an operation may use")
    max_tokens: int = Field(default=2000, ge=1, description="tokens a GraphQL document may have")
    max_cost: int = Field(
        default=50_000,
        ge=1,
        description="the most an operation may cost "
        "([Limits and hardening](#limits-and-hardening))",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="bytes a request body to `/graphql` may have (4 MiB)",
    )
    max_body_depth: int = Field(
        default=64,
        ge=1,
        description="levels of arrays and objects a request's JSON may nest (bodies, "
        "GET's `variables`, websocket messages)",
    )
    execution_timeout_seconds: float = Field(
        default=10.0, gt=0, description="seconds a query or mutation may run before it is cancelled"
    )
    rate_limit_per_second: float = Field(
        default=100.0, gt=0, description="requests a second each API key may make, after a burst"
    )
    rate_limit_burst: int = Field(
        default=1000, ge=1, description="requests an API key may make at once"
    )
    introspection: Switch = Field(
        default=None,
        json_schema_extra=_shown(FOR_BOTH_ENVIRONMENTS),
        description='introspection and "Did you mean …?" suggestions',
    )
    graphiql: Switch = Field(
        default=None,
        json_schema_extra=_shown(FOR_BOTH_ENVIRONMENTS),
        description="GraphiQL on `GET /graphql`",
    )
    fastpath: Flag = Field(
        default=True,
        description="`0` runs every operation on graphql-core's executor (the fast path "
        "off; [Performance](#performance))",
    )
    fast_lane: Flag = Field(
        default=True,
        description="`0` sends every POST through strawberry's view (the fast lane off; "
        "[Performance](#performance))",
    )
    log_format: LogFormat = Field(
        default="json", description="`json` (one object a line) or `text`"
    )
    log_level: LogLevel = Field(default="info", description="the least severe level logged")
    metrics_token: Annotated[str | None, BeforeValidator(_none_if_empty)] = Field(
        default=None,
        repr=False,
        json_schema_extra=_shown("none: `/metrics` is open"),
        description="a bearer token `/metrics` then requires",
    )
    otel: Flag = Field(
        default=False,
        description="`1` traces operations and SQL with OpenTelemetry (needs the `otel` extra)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`Settings(...)` holds what it is given and the defaults; `from_env` adds the
        environment."""
        return (init_settings,)

    @classmethod
    def from_env(cls) -> Self:
        return cls._checked(EnvSettingsSource(cls)())

    def replace(self, **changes: Any) -> Self:
        """These settings with some changed, checked as the environment's are."""
        return self._checked({**dict(self), **changes})

    @classmethod
    def _checked(cls, values: Mapping[str, Any]) -> Self:
        try:
            return cls(**values)
        except ValidationError as error:
            raise SettingsError(refusal(error, values)) from None

    @property
    def json_caps(self) -> JsonCaps:
        """The caps of stored JSON values: metadata and raw inputs."""
        return JsonCaps(max_depth=self.max_json_depth, max_bytes=self.max_json_bytes)

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    @property
    def server_processes(self) -> int:
        """How many processes `runql serve` runs (each with RUNQL_WORKERS executor slots):
        RUNQL_SERVE_WORKERS, else one per core this process may run on in production (so a
        server pinned with taskset counts its cores) and one in development."""
        if self.serve_workers is not None:
            return self.serve_workers
        return usable_cores() if not self.is_development else 1

    @property
    def introspection_enabled(self) -> bool:
        """Introspection, and the "Did you mean …?" suggestions that tell as much."""
        return self.is_development if self.introspection is None else self.introspection

    @property
    def egress_allowed(self) -> tuple[Network, ...]:
        """Internal networks agents may connect to."""
        if self.egress_allowed_cidrs is not None:
            return self.egress_allowed_cidrs
        return LOOPBACK if self.is_development else ()

    @property
    def graphiql_enabled(self) -> bool:
        return self.is_development if self.graphiql is None else self.graphiql


def variable(name: str) -> str:
    """The environment variable of a field: RUNQL_PORT for `port`."""
    return f"{PREFIX}{name.upper()}"


def refusal(error: ValidationError, values: Mapping[str, Any]) -> str:
    """One line per setting at fault: its variable, what it allows and the value given."""
    lines = []
    for name in dict.fromkeys(str(problem["loc"][0]) for problem in error.errors()):
        field = Settings.model_fields.get(name)
        if field is None:
            lines.append(f"{name} is not a setting")
        else:
            lines.append(f"{variable(name)} must be {allowed(field)}, not {values.get(name)!r}")
    return "; ".join(lines)


def _extra(field: FieldInfo, key: str) -> str | None:
    extra = field.json_schema_extra
    value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, str) else None


def _base_type(field: FieldInfo) -> Any:
    """The field's type without None."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not NoneType]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _bounds(field: FieldInfo) -> str:
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    above = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    return f" above {above}" if above is not None else ""


def allowed(field: FieldInfo) -> str:
    """What a setting's variable may hold, as its refusal and the README say it."""
    kind = _base_type(field)
    explicit = _extra(field, "allowed")
    if explicit is not None:
        return explicit
    if kind is bool:
        return f"one of {', '.join(FLAG_WORDS)}"
    if kind is int or kind is float:
        return ("a whole number" if kind is int else "a number") + _bounds(field)
    if get_origin(kind) is Literal:
        return f"one of {', '.join(get_args(kind))}"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return f"one of {', '.join(member.value for member in kind)}"
    return "text"


def _default_shown(field: FieldInfo) -> str:
    when_unset = _extra(field, "when_unset")
    if when_unset is not None:
        return when_unset
    default = field.default
    if isinstance(default, bool | float) and float(default).is_integer():
        default = int(default)
    elif isinstance(default, Enum):
        default = default.value
    return f"`{default}`"


def markdown_table() -> str:
    """The README's settings table, one row a field."""
    rows = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{variable(name)}` | {_default_shown(field)} | {allowed(field)} | {field.description} |"
        for name, field in Settings.model_fields.items()
    ]
    return "\n".join(rows) + "\n"
