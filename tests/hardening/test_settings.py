"""Every setting is one field of runql.settings.Settings: read from its RUNQL_* variable only by
`Settings.from_env()`, refused outside what its JSON schema allows with the variable's name, the
range and the value given, and listed in README's settings table exactly as the model renders it.
The cases below come from the model's JSON schema, not from a list of names kept here."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from runql.security.cost import operation_cost
from runql.served_schema import schema_for
from runql.settings import (
    Environment,
    Settings,
    SettingsError,
    allowed,
    markdown_table,
    variable,
)
from runql.storage.database import Database
from tests.conftest import GraphQLClient

ROOT = Path(__file__).resolve().parents[2]
FIELDS = Settings.model_fields
SCHEMA = Settings.model_json_schema()
SWITCHES = {"introspection": "introspection_enabled", "graphiql": "graphiql_enabled"}


def _kind(name: str) -> dict[str, Any]:
    """The field's JSON schema without its null branch, with a `$ref` followed."""
    prop = SCHEMA["properties"][name]
    kinds = [kind for kind in prop.get("anyOf", [prop]) if kind.get("type") != "null"]
    kind: dict[str, Any] = kinds[0]
    if "$ref" in kind:
        kind = SCHEMA["$defs"][kind["$ref"].rsplit("/", 1)[1]]
    return kind


def _refused(name: str) -> list[tuple[str, str]]:
    """Values the field's schema refuses, each with a word its refusal must hold."""
    kind = _kind(name)
    bad: list[tuple[str, str]] = []
    if "minimum" in kind:
        bad.append((str(kind["minimum"] - 1), str(kind["minimum"])))
    if "maximum" in kind:
        bad.append((str(kind["maximum"] + 1), str(kind["maximum"])))
    if "exclusiveMinimum" in kind:
        bad.append((str(kind["exclusiveMinimum"]), f"above {kind['exclusiveMinimum']}"))
    if kind.get("type") in ("integer", "number"):
        bad += [("many", "number"), ("nan", "number")]
    if kind.get("type") == "integer":
        bad.append(("1.5", "whole number"))
    if kind.get("type") == "boolean":
        bad += [("maybe", "yes"), ("off", "yes")]
    if "enum" in kind:
        bad.append(("loud", kind["enum"][0]))
    if kind.get("items", {}).get("anyOf"):  # networks
        bad += [
            ("127.0.0.0/8,10.0.0.1/8", "10.0.0.0/8"),
            ("10.0.0.0/33", "10.0.0.0/8"),
            ("localhost", "10.0.0.0/8"),
            ("10/8/8", "10.0.0.0/8"),
        ]
    return bad


def _accepted(name: str) -> str:
    """A value the field's schema allows that is not its default."""
    kind, default = _kind(name), SCHEMA["properties"][name].get("default")
    if kind.get("type") == "integer":
        return str(max(kind.get("minimum", 0), kind.get("exclusiveMinimum", -1) + 1) + 7)
    if kind.get("type") == "number":
        return "7.5"
    if kind.get("type") == "boolean":
        return "No" if default else "YES"
    if "enum" in kind:
        return str(next(value for value in kind["enum"] if value != default))
    if kind.get("items", {}).get("anyOf"):
        return " 10.0.0.0/8, fd00::/8 "
    return "https://a.example, https://b.example" if kind.get("type") == "array" else "x"


REFUSALS = [(name, value, word) for name in FIELDS for value, word in _refused(name)]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in FIELDS:
        monkeypatch.delenv(variable(name), raising=False)
    return monkeypatch


def test_the_readme_table_is_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| variable | default | allowed | meaning |")
    in_readme = readme[start : readme.index("\n\n", start) + 1]

    assert in_readme == markdown_table(), (
        "README's settings table is not runql/settings.py's: replace it with the output of "
        "`python -m runql settings-table`"
    )


def test_every_field_has_a_description_and_every_default_is_allowed() -> None:
    assert all(field.description for field in FIELDS.values())
    assert Settings() == Settings.model_validate(Settings().model_dump())


@pytest.mark.parametrize("name", FIELDS)
def test_each_setting_is_read_from_its_variable(clean_env: pytest.MonkeyPatch, name: str) -> None:
    raw = _accepted(name)
    clean_env.setenv(variable(name), raw)

    value = getattr(Settings.from_env(), name)

    assert value != getattr(Settings(), name)
    assert value == getattr(Settings().replace(**{name: raw}), name)


@pytest.mark.parametrize(
    ("name", "value", "word"),
    REFUSALS,
    ids=[f"{variable(name)}={value}" for name, value, _ in REFUSALS],
)
def test_a_value_it_does_not_allow_is_refused_naming_the_variable_and_the_range(
    clean_env: pytest.MonkeyPatch, name: str, value: str, word: str
) -> None:
    clean_env.setenv(variable(name), value)

    with pytest.raises(SettingsError) as refused:
        Settings.from_env()

    assert str(refused.value) == f"{variable(name)} must be {allowed(FIELDS[name])}, not {value!r}"
    assert word in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("RUNQL_PORT=-1", "RUNQL_PORT must be a whole number from 1 to 65535, not '-1'"),
        ("RUNQL_WORKERS=-3", "RUNQL_WORKERS must be a whole number of at least 0, not '-3'"),
        (
            "RUNQL_DB_POOL_SIZE=0",
            "RUNQL_DB_POOL_SIZE must be a whole number of at least 1, not '0'",
        ),
        (
            "RUNQL_WS_MAX_SUBSCRIPTIONS=0",
            "RUNQL_WS_MAX_SUBSCRIPTIONS must be a whole number of at least 1, not '0'",
        ),
        (
            "RUNQL_FASTPATH=off",
            "RUNQL_FASTPATH must be one of 0, 1, false, true, no, yes, not 'off'",
        ),
        ("RUNQL_LEASE_SECONDS=inf", "RUNQL_LEASE_SECONDS must be a number above 0, not 'inf'"),
        (
            "RUNQL_ENV=Production",
            "RUNQL_ENV must be one of development, production, not 'Production'",
        ),
    ],
)
def test_the_refusals_the_issue_named(
    clean_env: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    name, value = raw.split("=")
    clean_env.setenv(name, value)

    with pytest.raises(SettingsError) as refused:
        Settings.from_env()

    assert str(refused.value) == message


def test_several_values_at_fault_are_named_together(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RUNQL_PORT", "0")
    clean_env.setenv("RUNQL_OTEL", "sometimes")

    with pytest.raises(SettingsError, match=r"^RUNQL_PORT must be .*; RUNQL_OTEL must be "):
        Settings.from_env()


def test_the_command_line_refuses_to_start_naming_the_variable(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/r.db",
        "RUNQL_PORT": "-1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "runql", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr == "runql: RUNQL_PORT must be a whole number from 1 to 65535, not '-1'\n"
    assert not (tmp_path / "r.db").exists()


def test_the_command_line_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runql", "settings-table"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stdout) == (0, markdown_table())


def test_settings_made_in_code_read_no_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RUNQL_PORT", "9999")
    clean_env.setenv("RUNQL_ENV", "development")

    assert (Settings().port, Settings().env) == (8000, Environment.PRODUCTION)
    assert (Settings.from_env().port, Settings.from_env().env) == (9999, Environment.DEVELOPMENT)


def test_replace_checks_the_changes_as_the_environment_is_checked() -> None:
    settings = Settings(workers=0)

    assert settings.replace(port=9000) == Settings(workers=0, port=9000)
    with pytest.raises(
        SettingsError,
        match=r"^RUNQL_WS_MAX_SUBSCRIPTIONS must be a whole number "
        r"of at least 1, not 0$",
    ):
        settings.replace(ws_max_subscriptions=0)
    with pytest.raises(SettingsError, match=r"^portt is not a setting$"):
        settings.replace(portt=9000)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Settings().port = 1


@pytest.mark.parametrize("name", SWITCHES)
def test_switches_follow_the_environment_unless_set(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    switch = SWITCHES[name]
    assert getattr(Settings.from_env(), switch) is False
    clean_env.setenv("RUNQL_ENV", Environment.DEVELOPMENT.value)
    assert getattr(Settings.from_env(), switch) is True
    clean_env.setenv(variable(name), "false")
    assert getattr(Settings.from_env(), switch) is False
    clean_env.setenv("RUNQL_ENV", Environment.PRODUCTION.value)
    clean_env.setenv(variable(name), "true")
    assert getattr(Settings.from_env(), switch) is True


@pytest.mark.parametrize("fastpath", [True, False])
async def test_the_fast_path_is_the_settings_choice(
    clean_env: pytest.MonkeyPatch, demo_database: Database, fastpath: bool
) -> None:
    clean_env.setenv("RUNQL_ENV", "development")
    clean_env.setenv("RUNQL_FASTPATH", "yes" if fastpath else "no")
    gql = GraphQLClient(demo_database, Settings.from_env())

    body = await gql("{ runs(first: 2) { edges { node { id status } } } }")

    assert "errors" not in body, body
    # the fast path's executor reports which ran; graphql-core's, alone, reports nothing
    assert body["extensions"].get("executor") == ("fast" if fastpath else None)


def test_the_feed_costs_what_the_readme_says() -> None:
    operation = parse((ROOT / "queries" / "feed.graphql").read_text()).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)

    cost = operation_cost(schema_for(Settings())._schema, operation, lambda _name: None)

    assert cost == 18_902
    assert "18,902" in (ROOT / "README.md").read_text()
