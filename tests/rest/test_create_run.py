"""POST /runs: JSON or form fields, structured content, threads, idempotency, and refusals that
write nothing."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from runql.storage.database import Database
from runql.storage.tables import AgentRow, RunRow
from tests.conftest import GraphQLClient
from tests.rest.conftest import error_of, row_counts
from tests.rest.spec_example import CURL_POST_HEADERS

FORM = {"Content-Type": "application/x-www-form-urlencoded"}

TRIGGER = """query($id: ID!) { run(id: $id) { triggerMessageGroup { messages { content {
  parts { type text } attachments { type fileId url caption } } } } } }"""


async def trigger_content(gql: GraphQLClient, run_id: str) -> dict[str, Any]:
    """What the run's user message says, read over GraphQL."""
    body = await gql(TRIGGER, {"id": run_id})
    content: dict[str, Any] = body["data"]["run"]["triggerMessageGroup"]["messages"][0]["content"]
    return content


async def test_form_fields_make_a_run(http: httpx.AsyncClient, echo: AgentRow) -> None:
    form = (
        f"agent_id={echo.id}&content=Hello%2C+world%21&language=EN-gb&country=gb"
        "&metadata[source]=form&raw_inputs[text]=Hello"
    )
    response = await http.post("/runs", content=form, headers=FORM)
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["agent_id"], run["language"], run["country"]) == (echo.id, "en-GB", "GB")
    assert run["metadata"] == {"source": "form"}
    assert run["raw_inputs"] == {"text": "Hello"}


async def test_language_is_stored_in_canonical_case(
    http: httpx.AsyncClient, echo: AgentRow
) -> None:
    """As createRun stores it (tests/schema/test_mutations.py has the cases)."""
    response = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi", "language": "zh-hant-tw"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["language"] == "zh-Hant-TW"
    assert (await http.get(f"/runs/{response.json()['id']}")).json()["language"] == "zh-Hant-TW"
    refused = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi", "language": "EN_gb"}
    )
    assert error_of(refused) == {
        "status": 400,
        "code": "bad_user_input",
        "field": "language",
        "message": "'EN_gb' is not a BCP 47 language tag, such as en or en-GB",
    }


async def test_structured_content_from_form_fields(
    http: httpx.AsyncClient, echo: AgentRow, gql: GraphQLClient
) -> None:
    form = httpx.QueryParams(
        [
            ("agent_id", echo.id),
            ("content[parts][0][text]", "Look at this"),
            ("content[parts][1][type]", "markdown"),
            ("content[parts][1][text]", "**now**"),
            ("content[attachments][0][type]", "link"),
            ("content[attachments][0][url]", "https://example.com/a?b=c&d=e"),
        ]
    )
    response = await http.post("/runs", content=str(form), headers=FORM)
    assert response.status_code == 201, response.text
    assert await trigger_content(gql, response.json()["id"]) == {
        "parts": [
            {"type": "TEXT", "text": "Look at this"},
            {"type": "MARKDOWN", "text": "**now**"},
        ],
        "attachments": [
            {
                "type": "LINK",
                "fileId": None,
                "url": "https://example.com/a?b=c&d=e",
                "caption": None,
            }
        ],
    }


async def test_structured_content_from_json(
    http: httpx.AsyncClient, echo: AgentRow, gql: GraphQLClient
) -> None:
    content = {
        "parts": [{"type": "code", "text": "print(1)"}],
        "attachments": [
            {"type": "file", "file_id": "file_Rm4Mnheq2bfEPhBhP7SY", "caption": "Example file"}
        ],
    }
    response = await http.post("/runs", json={"agent_id": echo.id, "content": content})
    assert response.status_code == 201, response.text
    assert await trigger_content(gql, response.json()["id"]) == {
        "parts": [{"type": "CODE", "text": "print(1)"}],
        "attachments": [
            {
                "type": "FILE",
                "fileId": "file_Rm4Mnheq2bfEPhBhP7SY",
                "url": None,
                "caption": "Example file",
            }
        ],
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
    ],
)
async def test_a_json_object_is_read_whatever_its_content_type(
    http: httpx.AsyncClient, echo: AgentRow, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = orjson.dumps({"agent_id": echo.id, "content": "Hi", "metadata": {"n": 1}})
    response = await http.post("/runs", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {"n": 1}


async def test_a_thread_goes_on(http: httpx.AsyncClient, runs: list[RunRow]) -> None:
    earlier = runs[-1]
    response = await http.post(
        "/runs",
        json={"agent_id": earlier.agent_id, "thread_id": earlier.thread_id, "content": "More"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["thread_id"] == earlier.thread_id


async def test_the_same_idempotency_key_and_body_give_the_same_run(
    http: httpx.AsyncClient, demo_database: Database, echo: AgentRow
) -> None:
    body = {"agent_id": echo.id, "content": "Once only", "metadata": {"order": 7}}
    headers = {"Idempotency-Key": "order-7"}
    first = await http.post("/runs", json=body, headers=headers)
    assert first.status_code == 201
    counts = await row_counts(demo_database)
    again = await http.post("/runs", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    as_form = f"agent_id={echo.id}&content=Once+only&metadata[order]=7"
    assert (
        await http.post("/runs", content=as_form, headers={**headers, **FORM})
    ).status_code == 409  # "7" is not 7
    assert await row_counts(demo_database) == counts


async def test_an_idempotency_key_with_another_body_is_a_conflict(
    http: httpx.AsyncClient, demo_database: Database, echo: AgentRow
) -> None:
    headers = {"Idempotency-Key": "order-8"}
    assert (
        await http.post("/runs", json={"agent_id": echo.id, "content": "A"}, headers=headers)
    ).status_code == 201
    counts = await row_counts(demo_database)
    response = await http.post("/runs", json={"agent_id": echo.id, "content": "B"}, headers=headers)
    assert response.status_code == 409
    assert error_of(response) == {
        "status": 409,
        "code": "conflict",
        "field": "Idempotency-Key",
        "message": "this idempotency key was used with a different request",
    }
    assert await row_counts(demo_database) == counts


async def test_a_form_body_replays_its_json_twin(http: httpx.AsyncClient, echo: AgentRow) -> None:
    headers = {"Idempotency-Key": "twin"}
    first = await http.post("/runs", json={"agent_id": echo.id, "content": "Same"}, headers=headers)
    again = await http.post(
        "/runs", content=f"agent_id={echo.id}&content=Same", headers={**headers, **FORM}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


# (what is wrong, body, extra headers, status, code, field)
REFUSALS: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
    ("malformed JSON", b'{"agent_id": ', {}, 400, "bad_user_input", "body"),
    ("a JSON list", b"[1, 2]", {"Content-Type": "application/json"}, 400, "bad_user_input", "body"),
    ("an empty body", b"", {}, 400, "bad_user_input", "body"),
    ("not UTF-8", b"agent_id=\xff\xfe", FORM, 400, "bad_user_input", "body"),
    ("not form fields", b"just some text", FORM, 400, "bad_user_input", "body"),
    (
        "multipart",
        b"--x\r\n\r\n--x--",
        {"Content-Type": "multipart/form-data; boundary=x"},
        415,
        "unsupported_media_type",
        "Content-Type",
    ),
    ("no agent", b'{"content": "Hi"}', {}, 400, "bad_user_input", "agent_id"),
    ("a numeric agent", b'{"agent_id": 5, "content": "Hi"}', {}, 400, "bad_user_input", "agent_id"),
    (
        "a malformed agent id",
        b'{"agent_id": "agent_1", "content": "Hi"}',
        {},
        400,
        "bad_user_input",
        "agent_id",
    ),
    (
        "a run id as agent",
        b'{"agent_id": "run_Rm4Mnheq2bfEPhBhP7SY", "content": "Hi"}',
        {},
        400,
        "bad_user_input",
        "agent_id",
    ),
    (
        "an unknown agent",
        b'{"agent_id": "agent_Rm4Mnheq2bfEPhBhP7SY", "content": "Hi"}',
        {},
        404,
        "not_found",
        "agent_id",
    ),
    ("no content", b'{"agent_id": "@"}', {}, 400, "bad_user_input", "content"),
    ("numeric content", b'{"agent_id": "@", "content": 5}', {}, 400, "bad_user_input", "content"),
    ("blank content", b'{"agent_id": "@", "content": "  "}', {}, 400, "bad_user_input", "content"),
    (
        "parts not a list",
        b'{"agent_id": "@", "content": {"parts": "x"}}',
        {},
        400,
        "bad_user_input",
        "content.parts",
    ),
    (
        "an unknown part type",
        b'{"agent_id": "@", "content": {"parts": [{"type": "TEXT", "text": "x"}]}}',
        {},
        400,
        "bad_user_input",
        "content.parts[0].type",
    ),
    (
        "a part without text",
        b'{"agent_id": "@", "content": {"parts": [{"type": "text"}]}}',
        {},
        400,
        "bad_user_input",
        "content.parts[0].text",
    ),
    (
        "a part with an id",
        b'{"agent_id": "@", "content": {"parts": [{"text": "x", '
        b'"id": "part_Rm4Mnheq2bfEPhBhP7SY"}]}}',
        {},
        400,
        "bad_user_input",
        "content.parts[0].id",
    ),
    (
        "an attachment without a target",
        b'{"agent_id": "@", "content": {"attachments": [{"type": "file"}]}}',
        {},
        400,
        "bad_user_input",
        "content.attachments[0]",
    ),
    (
        "a camelCase field",
        b'{"agentId": "@", "content": "Hi"}',
        {},
        400,
        "bad_user_input",
        "agentId",
    ),
    (
        "metadata not an object",
        b'{"agent_id": "@", "content": "Hi", "metadata": "x"}',
        {},
        400,
        "bad_user_input",
        "metadata",
    ),
    (
        "a bad language",
        b'{"agent_id": "@", "content": "Hi", "language": "english_US"}',
        {},
        400,
        "bad_user_input",
        "language",
    ),
    (
        "a bad country",
        b'{"agent_id": "@", "content": "Hi", "country": "XX"}',
        {},
        400,
        "bad_user_input",
        "country",
    ),
    (
        "a bad time zone",
        b'{"agent_id": "@", "content": "Hi", "timezone": "Mars/Base"}',
        {},
        400,
        "bad_user_input",
        "timezone",
    ),
    (
        "a malformed thread",
        b'{"agent_id": "@", "content": "Hi", "thread_id": "thread_x"}',
        {},
        400,
        "bad_user_input",
        "thread_id",
    ),
    (
        "an unknown thread",
        b'{"agent_id": "@", "content": "Hi", "thread_id": "thread_Rm4Mnheq2bfEPhBhP7SY"}',
        {},
        404,
        "not_found",
        "thread_id",
    ),
    (
        "a field given twice",
        b"agent_id=@&agent_id=@&content=Hi",
        FORM,
        400,
        "bad_user_input",
        "agent_id",
    ),
    (
        "a list not numbered from 0",
        b"agent_id=@&content[parts][1][text]=Hi",
        FORM,
        400,
        "bad_user_input",
        "content[parts]",
    ),
    (
        "an empty idempotency key",
        b'{"agent_id": "@", "content": "Hi"}',
        {"Idempotency-Key": ""},
        400,
        "bad_user_input",
        "Idempotency-Key",
    ),
    (
        "a long idempotency key",
        b'{"agent_id": "@", "content": "Hi"}',
        {"Idempotency-Key": "k" * 256},
        400,
        "bad_user_input",
        "Idempotency-Key",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
async def test_a_refused_body_names_its_fault_and_writes_nothing(
    http: httpx.AsyncClient,
    demo_database: Database,
    echo: AgentRow,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str,
) -> None:
    counts = await row_counts(demo_database)
    response = await http.post(
        "/runs", content=body.replace(b"@", echo.id.encode()), headers=headers
    )
    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == (code, field), error
    assert await row_counts(demo_database) == counts


async def test_a_thread_of_another_agent_is_a_conflict(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    other = next(run for run in runs if run.agent_id != runs[0].agent_id)
    response = await http.post(
        "/runs", json={"agent_id": runs[0].agent_id, "content": "Hi", "thread_id": other.thread_id}
    )
    assert response.status_code == 409
    assert error_of(response)["field"] == "thread_id"


async def test_the_idempotency_key_header_is_sent_once(
    http: httpx.AsyncClient, echo: AgentRow
) -> None:
    headers = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi"}, headers=headers
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "Idempotency-Key"


async def test_content_over_its_cap_is_refused_by_field(
    http: httpx.AsyncClient, demo_database: Database, echo: AgentRow
) -> None:
    counts = await row_counts(demo_database)
    text = "x" * (1024 * 1024 + 1)
    response = await http.post("/runs", json={"agent_id": echo.id, "content": text})
    assert response.status_code == 400
    assert error_of(response)["field"] == "content"
    assert await row_counts(demo_database) == counts


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"agent_id": "agent_Rm4Mnheq2bfEPhBhP7SY", "content": "'
    for _ in range(total // 65536):
        yield b"x" * 65536
    yield b'"}'


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_payload_too_large(
    http: httpx.AsyncClient, demo_database: Database, declared: bool
) -> None:
    size = 2 * 1024 * 1024 + 128 * 1024
    counts = await row_counts(demo_database)
    body: Any = b"".join([chunk async for chunk in _chunks(size)]) if declared else _chunks(size)
    response = await http.post("/runs", content=body, headers=CURL_POST_HEADERS)
    assert response.status_code == 413
    error = error_of(response)
    assert (error["code"], error["field"]) == ("payload_too_large", "body")
    assert str(2 * 1024 * 1024 + 64 * 1024) in error["message"]
    assert await row_counts(demo_database) == counts
