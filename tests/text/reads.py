"""Every read path of an organization, against a real server: the GraphQL feed and a run's
page with every field, node/nodes, the REST list and each run, and runStatus and runEvents
replays over websockets. Each answer must be JSON with no error and no 5xx."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.subscriptions.client import TRANSPORT_WS, GraphQLSocket

QUERIES = Path(__file__).parents[2] / "queries"
FEED = (QUERIES / "feed.graphql").read_text()
RUN_DETAIL = (QUERIES / "run-detail.graphql").read_text()
NODES = (QUERIES / "node.graphql").read_text()
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { id status metadata rawInputs } }"
RUN_EVENTS = """subscription($id: ID!) { runEvents(runId: $id, after: 0) {
  seq type payload run { id status metadata rawInputs } } }"""


@dataclass
class Answers:
    """What the reads answered: every HTTP status seen, and what was wrong."""

    statuses: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def json_of(self, what: str, response: httpx.Response) -> Any:
        self.statuses.append(response.status_code)
        if response.status_code >= 500:
            self.problems.append(f"{what}: {response.status_code} {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            self.problems.append(f"{what}: not JSON: {response.text[:200]}")
            return None


async def _graphql(
    client: httpx.AsyncClient, answers: Answers, what: str, query: str, variables: dict[str, Any]
) -> Any:
    body = answers.json_of(
        what, await client.post("/graphql", json={"query": query, "variables": variables})
    )
    if isinstance(body, dict) and body.get("errors"):
        answers.problems.append(f"{what}: {body['errors']}")
    return body


async def _replays(ws_url: str, key: str, run_id: str, answers: Answers) -> None:
    socket = await GraphQLSocket.open(ws_url, key, TRANSPORT_WS)
    try:
        for name, query in (("runStatus", RUN_STATUS), ("runEvents", RUN_EVENTS)):
            outcome = await socket.collect(
                await socket.start(query, {"id": run_id}), until=1, seconds=10
            )
            if outcome.errors or not outcome.data:
                answers.problems.append(f"{name} {run_id}: {outcome.errors or 'nothing'}")
    finally:
        await socket.close()


async def read_everything(
    base_url: str, ws_url: str, key: str, *, runs: int = 100, replay_runs: int = 2
) -> Answers:
    """Read the organization's newest `runs` runs every way; `replay_runs` of them one by
    one and over websockets too."""
    answers = Answers()
    async with httpx.AsyncClient(
        base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        feed = await _graphql(client, answers, "feed", FEED, {"first": runs})
        edges = ((feed or {}).get("data") or {}).get("runs", {}).get("edges", [])
        run_ids = [edge["node"]["id"] for edge in edges]
        for run_id in run_ids[:replay_runs]:
            await _graphql(client, answers, f"run {run_id}", RUN_DETAIL, {"id": run_id})
        if run_ids:
            await _graphql(client, answers, "nodes", NODES, {"ids": run_ids[:20]})
        listed = answers.json_of("GET /runs", await client.get("/runs", params={"limit": runs}))
        for item in ((listed or {}).get("items") or [])[:replay_runs]:
            answers.json_of(f"GET /runs/{item['id']}", await client.get(f"/runs/{item['id']}"))
    for run_id in run_ids[:replay_runs]:
        await _replays(ws_url, key, run_id, answers)
    return answers
