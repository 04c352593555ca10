"""runql.text's rule at every entry: lone surrogates and NUL are refused with BAD_USER_INPUT
naming the field, before anything is written; other Unicode is kept as sent."""

from typing import Any

import httpx
import pytest

from runql.errors import BadUserInput
from runql.security.text_input import check_variables, fit_variables
from runql.storage.database import Database
from runql.text import check_value, text_problem
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import row_counts

SURROGATE = "\ud800"
NUL = "\x00"
KEPT = "\u202eRTL \ufdd0\uffff non-characters 𝄞 four bytes \U0010fffd é"

CREATE_AGENT = """mutation($input: CreateAgentInput!) {
  createAgent(input: $input) { agent { id name } } }"""
UPDATE_AGENT = """mutation($input: UpdateAgentInput!) {
  updateAgent(input: $input) { agent { id name } } }"""
CREATE_RUN = """mutation($input: CreateRunInput!) {
  createRun(input: $input) { run { id metadata rawInputs
    triggerMessageGroup { messages { content { parts { text }
      attachments { fileId url caption } } } } } } }"""
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { id } } }"


def test_what_the_rule_refuses() -> None:
    assert text_problem(KEPT) is None
    assert "lone surrogate (U+D800) at character 2" in str(text_problem("ab" + SURROGATE))
    assert "NUL" in str(text_problem("a\x00"))
    assert "NUL" in str(text_problem("é\x00"))
    with pytest.raises(BadUserInput) as refused:
        check_value({"tags": ["a", "b", "c" + SURROGATE]}, "metadata")
    assert refused.value.field == "metadata.tags[2]"
    with pytest.raises(BadUserInput) as refused:
        check_value({"a": {SURROGATE: 1}}, "metadata")
    assert refused.value.field == "metadata.a"
    assert "a key of metadata.a" in refused.value.message
    with pytest.raises(BadUserInput) as refused:
        check_value({"n": 2**70}, "rawInputs")
    assert refused.value.field == "rawInputs.n"


@pytest.fixture
async def agent_id(gql_empty: GraphQLClient) -> str:
    body = await gql_empty(
        CREATE_AGENT, {"input": {"name": "Echo", "kind": "echo", "config": {"delay_ms": 0}}}
    )
    return str(body["data"]["createAgent"]["agent"]["id"])


def _run_input(agent_id: str, **fields: Any) -> dict[str, Any]:
    return {"agentId": agent_id, "content": {"text": "hello"}, **fields}


def _structured(**attachment: Any) -> dict[str, Any]:
    return {
        "structured": {
            "parts": [{"text": "hi"}],
            "attachments": [{"type": "FILE", "fileId": "file_1", **attachment}],
        }
    }


BAD_RUNS = [
    ({"metadata": {"tags": ["a", "b", SURROGATE]}}, "input.metadata.tags[2]"),
    ({"metadata": {SURROGATE: "v"}}, "input.metadata"),
    ({"metadata": {"k": NUL}}, "input.metadata.k"),
    ({"rawInputs": {"text": "x" + SURROGATE}}, "input.rawInputs.text"),
    ({"content": {"text": "hi" + SURROGATE}}, "input.content.text"),
    ({"content": {"text": "hi" + NUL}}, "input.content.text"),
    (
        {"content": _structured(caption=SURROGATE)},
        "input.content.structured.attachments[0].caption",
    ),
    ({"content": _structured(fileId="f" + NUL)}, "input.content.structured.attachments[0].fileId"),
    (
        {"content": _structured(url="https://a.example/" + SURROGATE)},
        "input.content.structured.attachments[0].url",
    ),
    ({"idempotencyKey": "k" + SURROGATE}, "input.idempotencyKey"),
    ({"language": NUL}, "input.language"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_RUNS)
async def test_create_run_refuses_unfit_text_and_writes_nothing(
    gql_empty: GraphQLClient, database: Database, agent_id: str, fields: dict[str, Any], field: str
) -> None:
    before = await row_counts(database)
    body = await gql_empty(CREATE_RUN, {"input": _run_input(agent_id, **fields)})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field
    assert body["data"] is None
    assert await row_counts(database) == before


async def test_literals_are_checked_too(
    gql_empty: GraphQLClient, database: Database, agent_id: str
) -> None:
    before = await row_counts(database)
    body = await gql_empty(f"""mutation {{ createRun(input: {{agentId: "{agent_id}",
        content: {{text: "hi"}}, metadata: {{note: "a\\u0000b"}}}}) {{ run {{ id }} }} }}""")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.metadata.note"}
    assert await row_counts(database) == before


async def test_agents_refuse_unfit_names_and_configs(
    gql_empty: GraphQLClient, database: Database, agent_id: str
) -> None:
    before = await row_counts(database)
    cases: list[tuple[str, dict[str, Any], str]] = [
        (CREATE_AGENT, {"input": {"name": "A" + SURROGATE, "kind": "echo"}}, "input.name"),
        (
            CREATE_AGENT,
            {"input": {"name": "A", "kind": "echo", "config": {NUL: 1}}},
            "input.config",
        ),
        (UPDATE_AGENT, {"input": {"id": agent_id, "name": SURROGATE}}, "input.name"),
        (CANCEL_RUN, {"id": "run_" + SURROGATE}, "id"),
    ]
    for query, variables, field in cases:
        body = await gql_empty(query, variables)
        [error] = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, body
    assert await row_counts(database) == before


async def test_other_unicode_is_kept_as_sent(gql_empty: GraphQLClient, agent_id: str) -> None:
    body = await gql_empty(
        CREATE_RUN,
        {
            "input": _run_input(
                agent_id, content={"text": KEPT}, metadata={KEPT: [KEPT]}, rawInputs={"t": KEPT}
            )
        },
    )
    run = body["data"]["createRun"]["run"]
    assert run["metadata"] == {KEPT: [KEPT]}
    assert run["rawInputs"] == {"t": KEPT}
    assert run["triggerMessageGroup"]["messages"][0]["content"]["parts"] == [{"text": KEPT}]


async def _post_run(http: httpx.AsyncClient, content: str) -> httpx.Response:
    return await http.post(
        "/runs", content=content.encode(), headers={"Content-Type": "application/json"}
    )


async def test_rest_names_the_field_in_its_own_words(
    http: httpx.AsyncClient, demo_database: Database
) -> None:
    before = await row_counts(demo_database)
    cases = [
        (
            '{"agent_id": "agent_x", "content": "hi", "metadata": {"tags": ["\\u0000"]}}',
            "metadata.tags[0]",
        ),
        (
            '{"agent_id": "agent_x", "content": {"parts": [{"text": "a\\u0000"}]}}',
            "content.parts[0].text",
        ),
        (
            '{"agent_id": "agent_x", "content": "hi", "raw_inputs": {"userId": "\\u0000"}}',
            "raw_inputs.userId",
        ),
        ('{"agent_id": "agent_x", "content": "hi", "metadata": {"a": "\\ud800"}}', "metadata.a"),
    ]
    for content, field in cases:
        response = await _post_run(http, content)
        assert response.status_code == 400, response.text
        body = response.json()
        assert (body["code"], body["field"]) == ("bad_user_input", field), body
    form = await http.post(
        "/runs",
        content=b"agent_id=agent_x&content=a%00b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400
    assert form.json()["field"] == "content"
    listed = await http.get("/runs", params={"agent_id": "agent_\x00"})
    assert listed.status_code == 400
    assert listed.json()["field"] == "agent_id"
    assert await row_counts(demo_database) == before


@pytest.mark.parametrize("argument", ["--name", "--org"])
def test_the_cli_refuses_unfit_text(argument: str, capsys: pytest.CaptureFixture[str]) -> None:
    from runql.cli import main

    arguments = {"--name": "ci", "--org": "default", argument: "bad\udcff"}  # byte 0xff, undecoded
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", *[item for pair in arguments.items() for item in pair]])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argument}: the value is not valid Unicode" in error


@pytest.mark.parametrize(
    "variables",
    [
        None,
        {},
        {"id": "run_00000000000000000000"},
        {"a": "plain", "b": "text"},
        {"id": f"run{NUL}"},
        {f"i{NUL}d": "run"},
        {"id": SURROGATE},
        {SURROGATE: "x"},
        {"id": KEPT},
        {"id": "plain", "n": 2**64},
        {"id": "plain", "n": 7, "list": ["a", f"b{NUL}"]},
        {"id": "plain", "nested": {"k": SURROGATE}},
    ],
)
def test_fit_variables_is_the_rule(variables: dict[str, Any] | None) -> None:
    """The fast lane's check (plain ASCII text passes at once) says what the rule says."""
    try:
        check_variables(variables)
    except BadUserInput:
        refused = True
    else:
        refused = False
    assert fit_variables(variables) is not refused
