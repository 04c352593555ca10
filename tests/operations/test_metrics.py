"""/metrics: GraphQL operations by name, type and outcome with their latency and SQL
statements; HTTP requests by route; runs by status, the executor's queue and its lease
recoveries, and the write transactions committed, read when scraped."""

import asyncio

import httpx
import pytest
from sqlalchemy import text

from runql.agents import catalog
from runql.agents.echo import EchoKind
from runql.agents.registry import AgentRegistry, default_registry
from runql.app import create_app
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.lifecycle.runs import RunRequest, create_run
from runql.lifecycle.validation import Content
from runql.operations.metrics import ANONYMOUS, OTHER, operation_label
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID
from tests.operations.helpers import client, count, lifespan, sample, settings_for

STATUSES = ["PENDING", "RUNNING", "SUCCESS", "ERROR", "CANCELLED"]
OPERATIONS = "runql_graphql_operations_total"


async def _scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers={"Authorization": ""})  # no API key needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


async def test_a_named_operation_is_counted_with_its_outcome_time_and_sql(
    demo_database: Database, settings: Settings, api_key: str
) -> None:
    async with client(create_app(settings, demo_database), api_key) as http:
        before = await _scrape(http)
        ok = (
            await http.post(
                "/graphql",
                json={
                    "query": "query FeedCount "
                    "{ runs(first: 3) { totalCount edges { node { id } } } }"
                },
            )
        ).json()
        refused = (
            await http.post(
                "/graphql", json={"query": "query TooMany { runs(first: 10000) { totalCount } }"}
            )
        ).json()
        await http.post("/graphql", json={"query": "{ runs(first: 1) { totalCount } }"})
        after = await _scrape(http)

    def delta(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    assert "errors" not in ok
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert delta(OPERATIONS, operation="FeedCount", type="query", outcome="success") == 1
    assert delta(OPERATIONS, operation="TooMany", type="query", outcome="client_error") == 1
    assert delta(OPERATIONS, operation=ANONYMOUS, type="query", outcome="success") == 1
    assert (
        delta("runql_graphql_operation_duration_seconds_count", operation="FeedCount", type="query")
        == 1
    )
    assert (
        delta("runql_graphql_operation_duration_seconds_sum", operation="FeedCount", type="query")
        > 0
    )
    # The same statements the operation reports in development (extensions.sql).
    statements = ok["extensions"]["sql"]["statements"]
    assert statements > 0
    assert delta("runql_graphql_operation_sql_statements_sum", operation="FeedCount") == statements
    # Per HTTP request: the operation's statements and the API key's lookup.
    assert delta("runql_http_requests_total", method="POST", route="/graphql", status="200") == 3
    assert delta("runql_http_request_sql_statements_sum", route="/graphql") > statements


async def test_an_unexpected_error_counts_as_a_server_error(
    demo_database: Database, settings: Settings, api_key: str
) -> None:
    async with demo_database.write() as session:
        await session.execute(text("DROP TABLE run_errors"))
    query = (
        "query Broken { runs(first: 5, filter: {status: ERROR}) "
        "{ edges { node { errors { id } } } } }"
    )
    async with client(create_app(settings, demo_database), api_key) as http:
        before = await _scrape(http)
        body = (await http.post("/graphql", json={"query": query})).json()
        after = await _scrape(http)

    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    labels = {"operation": "Broken", "type": "query", "outcome": "server_error"}
    assert count(after, OPERATIONS, **labels) - count(before, OPERATIONS, **labels) == 1


async def test_runs_by_status_and_the_queue_are_read_at_scrape_time_in_one_statement(
    demo_database: Database, settings: Settings, api_key: str
) -> None:
    async with client(create_app(settings, demo_database), api_key) as http:

        async def total(status: str) -> int:
            body = (
                await http.post(
                    "/graphql",
                    json={
                        "query": "query($s: [RunStatus!]) "
                        "{ runs(filter: {status: $s}) { totalCount } }",
                        "variables": {"s": [status]},
                    },
                )
            ).json()
            return int(body["data"]["runs"]["totalCount"])

        first = await _scrape(http)
        expected = {status: await total(status) for status in STATUSES}
        echo = await catalog.create_agent(
            demo_database, default_registry(), DEFAULT_ORG_ID, name="Queued", kind="echo", config={}
        )
        await create_run(
            demo_database,
            DEFAULT_ORG_ID,
            RunRequest(echo.id, Content.text("hi")),
            max_content_bytes=1024,
        )  # no workers here: it stays PENDING
        second = await _scrape(http)
        third = await _scrape(http)

    for status, number in expected.items():
        assert sample(first, "runql_runs", status=status.lower()) == number, status
    assert sum(expected.values()) > 0
    assert sample(first, "runql_executor_queue_depth") == expected["PENDING"]
    assert sample(second, "runql_runs", status="pending") == expected["PENDING"] + 1
    assert sample(second, "runql_executor_queue_depth") == expected["PENDING"] + 1
    assert sample(first, "runql_executor_lease_recoveries_total") is None  # no workers here

    def scrapes(text: str, suffix: str) -> float:
        return count(text, f"runql_http_request_sql_statements_{suffix}", route="/metrics")

    # The first two scrapes are recorded by the third: one SQL statement each.
    assert scrapes(third, "count") - scrapes(first, "count") == 2
    assert scrapes(third, "sum") - scrapes(first, "sum") == 2


async def test_write_commits_count_this_process_s_write_transactions_not_its_reads(
    demo_database: Database, settings: Settings, api_key: str
) -> None:
    database = demo_database
    async with client(create_app(settings, database), api_key) as http:
        first = sample(await _scrape(http), "runql_database_write_commits_total")
        echo = await catalog.create_agent(
            database, default_registry(), DEFAULT_ORG_ID, name="Echo", kind="echo", config={}
        )
        await create_run(
            database, DEFAULT_ORG_ID, RunRequest(echo.id, Content.text("hi")), max_content_bytes=64
        )
        written = sample(await _scrape(http), "runql_database_write_commits_total")
        read = await http.post("/graphql", json={"query": "{ runs(first: 5) { totalCount } }"})
        assert read.json()["data"]["runs"]["totalCount"] > 0
        after_read = sample(await _scrape(http), "runql_database_write_commits_total")

    assert first is not None
    assert written is not None
    assert written - first == 2  # the agent, then the run and its first event
    assert after_read == written


async def test_lease_recoveries_are_the_executor_s(database: Database) -> None:
    echo = await catalog.create_agent(
        database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Echo",
        kind="echo",
        config={"delay_ms": 0},
    )
    await create_run(
        database, DEFAULT_ORG_ID, RunRequest(echo.id, Content.text("hi")), max_content_bytes=1024
    )
    dead = Executor(
        database, AgentRegistry([EchoKind()]), ExecutorConfig(lease_seconds=0.2), name="dead-worker"
    )
    assert await dead.claim() is not None  # then it "dies": it never renews its lease
    app = create_app(settings_for(database, workers=1, lease_seconds=5), database)
    async with lifespan(app), client(app) as http:
        executor = app.state.executor
        for _ in range(100):
            if executor.recovered:
                break
            await asyncio.sleep(0.05)
        scraped = await _scrape(http)

    assert executor.recovered == 1
    assert sample(scraped, "runql_executor_lease_recoveries_total") == 1


async def test_paths_are_counted_by_route_not_by_what_was_asked(
    database: Database, settings: Settings
) -> None:
    async with client(create_app(settings, database)) as http:
        before = await _scrape(http)
        await http.get("/healthz")
        await http.get("/no/such/page/123")
        after = await _scrape(http)

    def delta(**labels: str) -> float:
        return count(after, "runql_http_requests_total", **labels) - count(
            before, "runql_http_requests_total", **labels
        )

    assert delta(method="GET", route="/healthz", status="200") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert "/no/such/page" not in after


@pytest.mark.parametrize(
    ("given", "status"), [(None, 401), ("Bearer wrong", 401), ("Bearer scrape-me", 200)]
)
async def test_a_scrape_token_guards_metrics_when_set(
    database: Database, given: str | None, status: int
) -> None:
    settings = Settings(env=Environment.PRODUCTION, workers=0, metrics_token="scrape-me")
    headers = {"Authorization": given} if given else {}
    async with client(create_app(settings, database)) as http:
        response = await http.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "runql_" not in response.text
    else:
        assert "runql_runs" in response.text


def test_operation_names_become_few_plain_labels() -> None:
    assert operation_label(None) == ANONYMOUS
    assert operation_label("") == ANONYMOUS
    assert operation_label("FeedCount") == "FeedCount"
    assert operation_label("not a name") == OTHER
    assert operation_label("x" * 500) == OTHER
