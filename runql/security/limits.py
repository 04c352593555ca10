"""The query limits in force for an operation, read from the settings in its context."""

from dataclasses import dataclass

from runql.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    introspection: bool  # also "Did you mean …?" suggestions, which tell as much

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        return cls(max_depth=settings.max_depth, max_aliases=settings.max_aliases,
                   max_tokens=settings.max_tokens, max_cost=settings.max_cost,
                   introspection=settings.introspection_enabled)


def settings_of(context: object) -> Settings:
    """The settings of runql's context; production defaults for any other context."""
    settings = getattr(context, "settings", None)
    return settings if isinstance(settings, Settings) else Settings()


def limits_of(context: object) -> Limits:
    return Limits.from_settings(settings_of(context))
