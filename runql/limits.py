"""runql's limits, in one place: the fixed bounds of its API, and the query limits in force for
an operation, read from the settings in its context. The resolvers, the fast path, the cost
rule (runql.security) and REST import them from here."""

from dataclasses import dataclass

from runql.settings import Settings

DEFAULT_PAGE_SIZE = 20  # a connection's page (first/last) and a REST list's limit, when not given
MAX_PAGE_SIZE = 100  # the largest page either may ask for
MAX_NODES = 100  # ids in one `nodes(ids: ...)`
MAX_BATCH = 500  # keys bound in one statement, by the loaders and by the fast path


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    introspection: bool  # also "Did you mean …?" suggestions, which tell as much

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        return cls(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_cost=settings.max_cost,
            introspection=settings.introspection_enabled,
        )


def settings_of(context: object) -> Settings:
    """The settings of runql's context; production defaults for any other context."""
    settings = getattr(context, "settings", None)
    return settings if isinstance(settings, Settings) else Settings()


def limits_of(context: object) -> Limits:
    return Limits.from_settings(settings_of(context))
