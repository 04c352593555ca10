"""Each limit is a RUNQL_* setting with a default, documented in README's settings table."""

from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, parse

from runql.schema.schema import build_schema
from runql.security.cost import operation_cost
from runql.settings import Environment, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "MAX_DEPTH": ("max_depth", 12, "12"),
    "MAX_ALIASES": ("max_aliases", 15, "15"),
    "MAX_TOKENS": ("max_tokens", 2000, "2000"),
    "MAX_COST": ("max_cost", 50_000, "50000"),
    "MAX_BODY_BYTES": ("max_body_bytes", 4 * 1024 * 1024, "4194304"),
    "MAX_BODY_DEPTH": ("max_body_depth", 64, "64"),
    "MAX_JSON_BYTES": ("max_json_bytes", 64 * 1024, "65536"),
    "MAX_JSON_DEPTH": ("max_json_depth", 16, "16"),
    "EXECUTION_TIMEOUT_SECONDS": ("execution_timeout_seconds", 10.0, "10"),
    "RATE_LIMIT_PER_SECOND": ("rate_limit_per_second", 100.0, "100"),
    "RATE_LIMIT_BURST": ("rate_limit_burst", 1000, "1000"),
    "WS_MAX_BACKLOG_BYTES": ("ws_max_backlog_bytes", 4 * 1024 * 1024, "4194304"),
}
SWITCHES = {"INTROSPECTION": "introspection_enabled", "GRAPHIQL": "graphiql_enabled"}
FLAGS = {"WS_SHARED_STREAMS": ("ws_shared_streams", True), "WS_COMPRESSION": ("ws_compression",
                                                                              False),
         "FAST_LANE": ("fast_lane", True)}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*DEFAULTS, *SWITCHES, *FLAGS, "ENV"]:
        monkeypatch.delenv(f"RUNQL_{name}", raising=False)
    return monkeypatch


@pytest.mark.parametrize("name", DEFAULTS)
def test_each_limit_has_its_default_and_is_in_the_readme(clean_env: pytest.MonkeyPatch,
                                                         name: str) -> None:
    field, default, shown = DEFAULTS[name]

    assert getattr(Settings.from_env(), field) == getattr(Settings(), field) == default
    assert f"| `RUNQL_{name}` | `{shown}` |" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", DEFAULTS)
def test_each_limit_is_read_from_its_variable(clean_env: pytest.MonkeyPatch, name: str) -> None:
    field, _, _ = DEFAULTS[name]
    clean_env.setenv(f"RUNQL_{name}", "7")

    assert getattr(Settings.from_env(), field) == 7


@pytest.mark.parametrize("value", ["0", "-3", "many"])
@pytest.mark.parametrize("name", DEFAULTS)
def test_a_limit_below_1_or_not_a_number_is_a_clear_error(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(f"RUNQL_{name}", value)

    with pytest.raises(SettingsError, match=f"RUNQL_{name} must be"):
        Settings.from_env()


@pytest.mark.parametrize("name", SWITCHES)
def test_switches_follow_the_environment_unless_set(clean_env: pytest.MonkeyPatch,
                                                    name: str) -> None:
    switch = SWITCHES[name]
    assert f"| `RUNQL_{name}` | on in development, off in production |" in (
        ROOT / "README.md").read_text()
    assert getattr(Settings.from_env(), switch) is False
    clean_env.setenv("RUNQL_ENV", Environment.DEVELOPMENT.value)
    assert getattr(Settings.from_env(), switch) is True
    clean_env.setenv(f"RUNQL_{name}", "false")
    assert getattr(Settings.from_env(), switch) is False
    clean_env.setenv("RUNQL_ENV", Environment.PRODUCTION.value)
    clean_env.setenv(f"RUNQL_{name}", "true")
    assert getattr(Settings.from_env(), switch) is True


@pytest.mark.parametrize("name", SWITCHES)
def test_a_switch_that_is_not_a_flag_is_a_clear_error(clean_env: pytest.MonkeyPatch,
                                                      name: str) -> None:
    clean_env.setenv(f"RUNQL_{name}", "perhaps")

    with pytest.raises(SettingsError, match=f"RUNQL_{name} must be one of"):
        Settings.from_env()


def test_the_feed_costs_what_the_readme_says() -> None:
    operation = parse((ROOT / "queries" / "feed.graphql").read_text()).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)

    cost = operation_cost(build_schema()._schema, operation, lambda _name: None)

    assert cost == 18_902
    assert "18,902" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", FLAGS)
def test_each_flag_has_its_default_reads_its_variable_and_refuses_other_words(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    field, default = FLAGS[name]
    assert getattr(Settings.from_env(), field) is getattr(Settings(), field) is default
    clean_env.setenv(f"RUNQL_{name}", "no" if default else "yes")
    assert getattr(Settings.from_env(), field) is not default
    clean_env.setenv(f"RUNQL_{name}", "maybe")
    with pytest.raises(SettingsError, match=f"RUNQL_{name} must be one of"):
        Settings.from_env()
