"""The spec's three curl examples, over ASGI: each answers with the spec's Run object, every key
of the spec's example in the example's order."""

from typing import Any

import httpx
import orjson

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.storage.database import Database
from runql.storage.graph import OBJECTS
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, RunRow
from tests.rest.spec_example import (
    CURL_GET_HEADERS,
    CURL_POST_HEADERS,
    SPEC_POST_BODY,
    SPEC_RUN_KEYS,
    check_spec_keys,
    spec_post_body,
    tree_paths,
)


async def test_list_runs_as_in_the_spec(http: httpx.AsyncClient, runs: list[RunRow]) -> None:
    response = await http.get("/runs", headers=CURL_GET_HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["items", "pagination"]
    assert [item["id"] for item in body["items"]] == [run.id for run in runs[:20]]
    for item in body["items"]:
        check_spec_keys(item)
    pagination = body["pagination"]
    assert list(pagination) == ["has_more_before", "has_more_after", "next_cursor", "prev_cursor"]
    assert pagination["has_more_before"] is False
    assert pagination["has_more_after"] is True
    assert isinstance(pagination["next_cursor"], str)
    assert isinstance(pagination["prev_cursor"], str)


async def test_get_run_as_in_the_spec(http: httpx.AsyncClient, runs: list[RunRow]) -> None:
    run = next(run for run in runs if run.status == "success")
    response = await http.get(f"/runs/{run.id}", headers=CURL_GET_HEADERS)
    assert response.status_code == 200
    document = response.json()
    shown = check_spec_keys(document)
    assert document["id"] == run.id
    assert document["status"] == "success"
    assert {"message_group.messages[].actor.name", "cost.unit"} <= shown
    # After the spec's keys: the columns the run graph says REST shows, these six first.
    extras = list(document)[len(SPEC_RUN_KEYS) :]
    assert extras[:6] == ["thread_id", "language", "country", "timezone", "metadata", "raw_inputs"]
    assert extras == list(OBJECTS["Run"].shown)


async def test_create_run_as_in_the_spec(http: httpx.AsyncClient, echo: AgentRow) -> None:
    response = await http.post("/runs", content=spec_post_body(echo.id), headers=CURL_POST_HEADERS)
    assert response.status_code == 201, response.text
    document = response.json()
    check_spec_keys(document)
    assert response.headers["location"] == f"/runs/{document['id']}"
    assert document["status"] == "pending"
    assert document["agent_id"] == echo.id
    assert (document["language"], document["country"], document["timezone"]) == (
        "en",
        "US",
        "America/New_York",
    )
    assert document["raw_inputs"] == {"text": "Hello, world!"}
    assert document["message_group"] is None  # no reply yet
    assert (await http.get(f"/runs/{document['id']}")).json() == document


async def test_spec_example_as_published_names_an_unknown_agent(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", content=orjson.dumps(SPEC_POST_BODY), headers=CURL_POST_HEADERS
    )
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "code": "not_found",
        "message": "there is no agent agent_Rm4Mnheq2bfEPhBhP7SY",
        "field": "agent_id",
    }


async def executed_run(database: Database, http: httpx.AsyncClient) -> dict[str, Any]:
    """A run with an attachment, executed by the echo agent, which replies with what it got."""
    echo = await catalog.create_agent(
        database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Echo",
        kind="echo",
        config={"delay_ms": 0},
    )
    content = {
        "parts": [{"type": "text", "text": "See the file"}],
        "attachments": [
            {
                "type": "file",
                "file_id": "file_Rm4Mnheq2bfEPhBhP7SY",
                "url": "https://example.com/report.pdf",
                "caption": "Report",
            }
        ],
    }
    created = await http.post("/runs", json={"agent_id": echo.id, "content": content})
    assert created.status_code == 201, created.text
    executor = Executor(database, default_registry(), ExecutorConfig(concurrency=1))
    assert await executor.run_once()
    document: dict[str, Any] = (await http.get(f"/runs/{created.json()['id']}")).json()
    assert document["status"] == "success"
    return document


async def test_runs_show_every_key_of_the_spec_example(
    http: httpx.AsyncClient, empty_database: Database, empty_http: httpx.AsyncClient
) -> None:
    """Across a few runs (one per status, and one whose reply has an attachment), every key of
    the example shows, in order, down to the attachments' captions."""
    listed = (await http.get("/runs", params={"limit": 100, "order": "asc"})).json()["items"]
    shown: set[str] = set()
    for document in [*listed, await executed_run(empty_database, empty_http)]:
        shown |= check_spec_keys(document)
    assert shown == tree_paths(SPEC_RUN_KEYS)
