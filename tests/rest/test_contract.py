"""The REST contract's models (runql.rest.contract): the documents REST answers with are the
models' documents key for key, and a body the model refuses is named in REST's words."""

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from runql.encoding import dumps
from runql.errors import BadUserInput
from runql.rest import contract
from runql.rest.body import run_request
from runql.storage.tables import AgentRow, RunRow

AGENT = "agent_Rm4Mnheq2bfEPhBhP7SY"


def _as_model(model: type[BaseModel], answer: httpx.Response) -> None:
    """The answer validates against `model`, and the model writes it back byte for byte."""
    validated = model.model_validate_json(answer.content)
    assert dumps(validated.model_dump(mode="json")) == answer.content


async def test_pages_and_runs_are_the_models_documents(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    for order in ("desc", "asc"):
        _as_model(contract.RunList, await http.get("/runs", params={"limit": 100, "order": order}))
    for run in runs:
        _as_model(contract.Run, await http.get(f"/runs/{run.id}"))


async def test_a_new_run_and_an_error_are_the_models_documents(
    http: httpx.AsyncClient, echo: AgentRow
) -> None:
    created = await http.post("/runs", json={"agent_id": echo.id, "content": "Hi"})
    assert created.status_code == 201
    _as_model(contract.Run, created)
    refused = await http.post("/runs", json={"agent_id": echo.id})
    assert refused.status_code == 400
    error = contract.Error.model_validate_json(refused.content)
    assert dumps(error.body()) == refused.content


def test_a_document_with_a_key_more_or_less_is_refused() -> None:
    """So that the checks above mean something: the document models are closed."""
    pagination = {
        "has_more_before": False,
        "has_more_after": False,
        "next_cursor": None,
        "prev_cursor": None,
    }
    contract.Pagination.model_validate(pagination)
    with pytest.raises(ValidationError, match="extra"):
        contract.Pagination.model_validate({**pagination, "extra": 1})
    with pytest.raises(ValidationError, match="next_cursor"):
        contract.Pagination.model_validate({**pagination, "next_cursor": 5})
    del pagination["prev_cursor"]
    with pytest.raises(ValidationError, match="prev_cursor"):
        contract.Pagination.model_validate(pagination)


# (body, field, message)
REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    (
        {"agent_id": AGENT},
        "content",
        "content is required: a string, or an object with parts and attachments",
    ),
    (
        {"agent_id": AGENT, "content": []},
        "content",
        "content must be a string, or an object with parts and attachments",
    ),
    ({"content": "Hi"}, "agent_id", "agent_id is required"),
    ({"agent_id": None, "content": "Hi"}, "agent_id", "agent_id is required"),
    ({"agent_id": 5, "content": "Hi"}, "agent_id", "agent_id must be a string"),
    (
        {"agentId": AGENT, "content": "Hi"},
        "agentId",
        "'agentId' is not a field of POST /runs; the fields are agent_id, content, thread_id, "
        "language, country, timezone, metadata, raw_inputs",
    ),
    (
        {"agent_id": AGENT, "content": {"parts": [{"text": "x", "id": "p"}]}},
        "content.parts[0].id",
        "content.parts[0].id is not a field here; the fields are type, text",
    ),
    (
        {"agent_id": AGENT, "content": {"parts": [{"type": "TEXT", "text": "x"}]}},
        "content.parts[0].type",
        "content.parts[0].type is one of 'text', 'markdown', 'code' or 'json', not 'TEXT'",
    ),
    (
        {"agent_id": AGENT, "content": {"parts": [5]}},
        "content.parts[0]",
        "content.parts[0] must be a JSON object",
    ),
    (
        {"agent_id": AGENT, "content": {"attachments": "x"}},
        "content.attachments",
        "content.attachments must be a list",
    ),
    (
        {"agent_id": AGENT, "content": {"attachments": [{"type": 5, "url": "u"}]}},
        "content.attachments[0].type",
        "content.attachments[0].type must be a string",
    ),
    (
        {"agent_id": AGENT, "content": "Hi", "metadata": "x"},
        "metadata",
        "metadata must be a JSON object",
    ),
    (
        {"agent_id": AGENT, "content": "Hi", "raw_inputs": [1]},
        "raw_inputs",
        "raw_inputs must be a JSON object",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), REFUSALS, ids=[case[2] for case in REFUSALS])
def test_a_refused_body_is_named_in_rest_words(
    body: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(BadUserInput) as refused:
        run_request(body, None)
    assert (refused.value.field, refused.value.message) == (field, message)


def test_structured_content_reads_into_the_service_request() -> None:
    wanted = run_request(
        {
            "agent_id": AGENT,
            "metadata": None,
            "content": {
                "parts": [
                    {"text": "a"},
                    {"type": None, "text": "b"},
                    {"type": "code", "text": "c"},
                ],
                "attachments": [{"type": "link", "url": "https://example.com", "caption": "x"}],
            },
        },
        "key",
    )
    assert [(part.text, part.type) for part in wanted.content.parts] == [
        ("a", "text"),
        ("b", "text"),
        ("c", "code"),
    ]
    [attachment] = wanted.content.attachments
    assert (attachment.type, attachment.url, attachment.file_id, attachment.caption) == (
        "link",
        "https://example.com",
        None,
        "x",
    )
    assert (wanted.metadata, wanted.idempotency_key) == ({}, "key")
