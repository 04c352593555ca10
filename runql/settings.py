"""Settings, read from `RUNQL_*` environment variables."""

import ipaddress
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from runql.text import JsonCaps

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    pass


def _env(name: str, default: str) -> str:
    return os.environ.get(f"RUNQL_{name}", default)


def _float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"RUNQL_{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"RUNQL_{name} must be above 0, not {raw!r}")
    return value


def _int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"RUNQL_{name} must be a whole number, not {raw!r}") from None


def _limit(name: str, default: int) -> int:
    value = _int(name, default)
    if value < 1:
        raise SettingsError(f"RUNQL_{name} must be at least 1, not {value}")
    return value


def _optional_limit(name: str) -> int | None:
    """A limit that is None (the environment decides) unless RUNQL_{name} is set."""
    return _limit(name, 1) if f"RUNQL_{name}" in os.environ else None


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _env(name, default).lower()
    if raw not in choices:
        raise SettingsError(f"RUNQL_{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _flag(name: str, default: bool = False) -> bool:
    raw = _choice(name, "1" if default else "0", ("0", "1", "false", "true", "no", "yes"))
    return raw in ("1", "true", "yes")


def _switch(name: str) -> bool | None:
    """A flag that is None (the environment decides) unless RUNQL_{name} is set."""
    return _flag(name) if f"RUNQL_{name}" in os.environ else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this system (macOS)
        return os.cpu_count() or 1


def _networks(name: str) -> tuple[Network, ...] | None:
    """Comma-separated CIDRs, or None when RUNQL_{name} is not set."""
    raw = os.environ.get(f"RUNQL_{name}")
    if raw is None:
        return None
    networks = []
    for cidr in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(cidr))
        except ValueError:
            raise SettingsError(
                f"RUNQL_{name} must list networks such as 10.0.0.0/8 or fd00::/8 (no host bits "
                f"set), not {cidr!r}"
            ) from None
    return tuple(networks)


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./runql.db"
    env: Environment = Environment.PRODUCTION
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 5
    db_max_overflow: int = 5
    workers: int = 4
    serve_workers: int | None = None  # None: one per core in production, 1 in development
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    agent_timeout_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    max_content_bytes: int = 1024 * 1024
    max_json_bytes: int = 64 * 1024
    max_json_depth: int = 16
    dev_key_file: str = ".runql-dev-key"
    max_depth: int = 12
    max_aliases: int = 15
    max_tokens: int = 2000
    max_cost: int = 50_000
    max_body_bytes: int = 4 * 1024 * 1024
    max_body_depth: int = 64
    execution_timeout_seconds: float = 10.0
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 1000
    introspection: bool | None = None  # None: on in development, off in production
    graphiql: bool | None = None  # None: on in development, off in production
    ws_init_timeout_seconds: float = 10.0
    ws_keep_alive_seconds: float = 15.0
    ws_max_subscriptions: int = 100
    allowed_origins: tuple[str, ...] = ()
    subscriber_queue_size: int = 1000
    ws_compression: bool = False
    ws_shared_streams: bool = True
    ws_max_backlog_bytes: int = 4 * 1024 * 1024
    log_format: str = "json"
    log_level: str = "info"
    metrics_token: str | None = None
    otel: bool = False
    # None: loopback in development, nothing in production
    egress_allowed_cidrs: tuple[Network, ...] | None = None
    fast_lane: bool = True

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

    @classmethod
    def from_env(cls) -> "Settings":
        raw_env = _env("ENV", Environment.PRODUCTION.value)
        try:
            env = Environment(raw_env)
        except ValueError:
            choices = ", ".join(e.value for e in Environment)
            raise SettingsError(f"RUNQL_ENV must be one of {choices}, not {raw_env!r}") from None
        return cls(
            database_url=_env("DATABASE_URL", cls.database_url),
            env=env,
            host=_env("HOST", cls.host),
            port=_int("PORT", cls.port),
            db_pool_size=_int("DB_POOL_SIZE", cls.db_pool_size),
            db_max_overflow=_int("DB_MAX_OVERFLOW", cls.db_max_overflow),
            workers=_int("WORKERS", cls.workers),
            serve_workers=_optional_limit("SERVE_WORKERS"),
            lease_seconds=_float("LEASE_SECONDS", cls.lease_seconds),
            poll_seconds=_float("POLL_SECONDS", cls.poll_seconds),
            agent_timeout_seconds=_float("AGENT_TIMEOUT_SECONDS", cls.agent_timeout_seconds),
            shutdown_grace_seconds=_float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            max_content_bytes=_int("MAX_CONTENT_BYTES", cls.max_content_bytes),
            max_json_bytes=_limit("MAX_JSON_BYTES", cls.max_json_bytes),
            max_json_depth=_limit("MAX_JSON_DEPTH", cls.max_json_depth),
            dev_key_file=_env("DEV_KEY_FILE", cls.dev_key_file),
            max_depth=_limit("MAX_DEPTH", cls.max_depth),
            max_aliases=_limit("MAX_ALIASES", cls.max_aliases),
            max_tokens=_limit("MAX_TOKENS", cls.max_tokens),
            max_cost=_limit("MAX_COST", cls.max_cost),
            max_body_bytes=_limit("MAX_BODY_BYTES", cls.max_body_bytes),
            max_body_depth=_limit("MAX_BODY_DEPTH", cls.max_body_depth),
            execution_timeout_seconds=_float("EXECUTION_TIMEOUT_SECONDS",
                                             cls.execution_timeout_seconds),
            rate_limit_per_second=_float("RATE_LIMIT_PER_SECOND", cls.rate_limit_per_second),
            rate_limit_burst=_limit("RATE_LIMIT_BURST", cls.rate_limit_burst),
            introspection=_switch("INTROSPECTION"),
            graphiql=_switch("GRAPHIQL"),
            ws_init_timeout_seconds=_float("WS_INIT_TIMEOUT_SECONDS", cls.ws_init_timeout_seconds),
            ws_keep_alive_seconds=_float("WS_KEEP_ALIVE_SECONDS", cls.ws_keep_alive_seconds),
            ws_max_subscriptions=_int("WS_MAX_SUBSCRIPTIONS", cls.ws_max_subscriptions),
            allowed_origins=tuple(o.strip() for o in _env("ALLOWED_ORIGINS", "").split(",")
                                  if o.strip()),
            subscriber_queue_size=_int("SUBSCRIBER_QUEUE_SIZE", cls.subscriber_queue_size),
            ws_compression=_flag("WS_COMPRESSION"),
            ws_shared_streams=_flag("WS_SHARED_STREAMS", default=True),
            ws_max_backlog_bytes=_limit("WS_MAX_BACKLOG_BYTES", cls.ws_max_backlog_bytes),
            log_format=_choice("LOG_FORMAT", cls.log_format, LOG_FORMATS),
            log_level=_choice("LOG_LEVEL", cls.log_level, LOG_LEVELS),
            metrics_token=_env("METRICS_TOKEN", "") or None,
            otel=_flag("OTEL"),
            egress_allowed_cidrs=_networks("EGRESS_ALLOWED_CIDRS"),
            fast_lane=_flag("FAST_LANE", default=True),
        )
