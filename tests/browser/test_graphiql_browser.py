"""GraphiQL in a real browser (Debian's Chromium, driven by Playwright) against a real
`runql serve` in development: it loads from runql alone, runs the feed query, shows the docs,
follows a run's status over a websocket subscription until SUCCESS, and shows a streaming
agent's text grow before its run ends."""

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    Page,
    Request,
    Response,
    Route,
    WebSocket,
    async_playwright,
)

from tests.operations.live import ROOT, LiveServer, live_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 30_000

SLOW_AGENT = (
    'mutation { createAgent(input: {name: "Slow echo", kind: "echo", '
    "config: {delay_ms: 60000}}) { agent { id } } }"
)
CREATE_RUN = (
    "mutation($agent: ID!, $text: String!) { createRun(input: {agentId: $agent, "
    "content: {text: $text}}) { run { id status } } }"
)
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { id status } } }"
RUN_STATUS = "query($id: ID!) { run(id: $id) { status } }"
ECHO_AGENT = "{ agents(first: 20) { edges { node { id name kind } } } }"

# Records each status the response pane shows while it shows a runStatus result.
WATCH_STATUSES = """() => {
  window.runqlStatuses = [];
  const pane = document.querySelector('.graphiql-response');
  const look = () => {
    const text = pane.innerText;
    const match = text.includes('runStatus') && text.match(/"status":\\s*"([A-Z]+)"/);
    if (match && window.runqlStatuses.at(-1) !== match[1]) window.runqlStatuses.push(match[1]);
  };
  new MutationObserver(look).observe(pane, {subtree: true, childList: true, characterData: true});
}"""

# Records each (run status, text) the response pane shows while it shows a runEvents result.
WATCH_TEXT = """() => {
  window.runqlTexts = [];
  const pane = document.querySelector('.graphiql-response');
  const look = () => {
    const shown = pane.innerText;
    const status = shown.includes('runEvents') && shown.match(/"status":\\s*"([A-Z]+)"/);
    const text = shown.match(/"text":\\s*"([^"]*)"/);
    if (!status || !text) return;
    const last = window.runqlTexts.at(-1);
    if (!last || last[0] !== status[1] || last[1] !== text[1]) {
      window.runqlTexts.push([status[1], text[1]]);
    }
  };
  new MutationObserver(look).observe(pane, {subtree: true, childList: true, characterData: true});
}"""
TYPED = " ".join(f"word{index}" for index in range(16))


@dataclass
class Traffic:
    """Everything the page asked for, and what went wrong."""

    requests: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_failed(self, request: Request) -> None:
        self.failed.append(f"{request.url}: {request.failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url}: HTTP {response.status}")

    def on_websocket(self, socket: WebSocket) -> None:
        self.websockets.append(socket.url)
        socket.on(
            "framereceived",
            lambda payload: self.frames.append(
                json.loads(payload if isinstance(payload, str) else payload.decode())
            ),
        )

    async def guard(self, route: Route) -> None:
        """Only loopback may be reached; anything else is recorded and refused."""
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            self.outside.append(route.request.url)
            await route.abort()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # One worker: a slow run holds it, so the watched run waits in PENDING until we let it go.
    with live_server(tmp_path, demo_runs=20, ENV="development", WORKERS="1") as running:
        yield running


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: `make browser` installs it")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _open(browser: Browser, url: str, traffic: Traffic) -> Page:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    await context.route("**/*", traffic.guard)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", traffic.on_request)
    page.on("requestfailed", traffic.on_failed)
    page.on("response", traffic.on_response)
    page.on("websocket", traffic.on_websocket)
    page.on(
        "console",
        lambda message: (
            traffic.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: traffic.console_errors.append(str(error)))
    await page.goto(url)
    return page


async def _replace_query(page: Page, text: str, operation: str) -> None:
    """As a person would: click into the editor, select everything, put the new text in; then
    wait until GraphiQL has taken the edit in (it notes the operation's name when it has)."""
    await page.locator(".graphiql-query-editor .CodeMirror").click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)
    await page.wait_for_function(
        "name => localStorage.getItem('graphiql:operationName') === name", arg=operation
    )


def _wait_for_status(server: LiveServer, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while server.data(RUN_STATUS, {"id": run_id})["run"]["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        time.sleep(0.05)


def _echo_agent(server: LiveServer, name: str = "Echo") -> str:
    edges = server.data(ECHO_AGENT)["agents"]["edges"]
    return str(next(e["node"]["id"] for e in edges if e["node"]["name"] == name))


def _new_run(server: LiveServer, agent: str, text: str) -> str:
    run = server.data(CREATE_RUN, {"agent": agent, "text": text})["createRun"]["run"]
    return str(run["id"])


async def test_graphiql_runs_the_feed_and_follows_a_run_to_success_from_runql_alone(
    server: LiveServer, browser: Browser
) -> None:
    traffic = Traffic()
    page = await _open(browser, server.graphql_url, traffic)

    # Opens with the feed query and, in development, the dev key in its headers.
    editor = page.locator(".graphiql-query-editor")
    await editor.get_by_text("query Feed").wait_for()
    tools = page.locator(".graphiql-editor-tool")
    assert f"Bearer {server.dev_key}" in await tools.inner_text()

    # Runs the feed query and shows the result.
    response = page.locator(".graphiql-response")
    await page.locator(".graphiql-execute-button").click()
    await response.get_by_text('"totalCount": 20').wait_for()
    assert '"agent"' in await response.inner_text()

    # Shows the docs explorer, with the schema's three root types.
    await page.locator('button[aria-label="Show Documentation Explorer"]').click()
    docs = page.locator('section[aria-label="Documentation Explorer"]')
    await docs.get_by_text("Subscription", exact=True).wait_for()
    roots = await docs.inner_text()
    assert "Root Types" in roots
    assert "Query" in roots
    assert "Mutation" in roots

    # A run for the demo echo agent waits (PENDING) while a slow run holds the only worker.
    slow = server.data(SLOW_AGENT)["createAgent"]["agent"]["id"]
    blocker = _new_run(server, slow, "hold the worker")
    _wait_for_status(server, blocker, "RUNNING")
    watched = _new_run(server, _echo_agent(server), "ping")
    await _replace_query(
        page,
        f'subscription Watch {{\n  runStatus(id: "{watched}") {{\n    id\n    status\n  }}\n}}\n',
        "Watch",
    )
    await page.evaluate(WATCH_STATUSES)
    await page.locator(".graphiql-execute-button").click()
    await page.wait_for_function("() => window.runqlStatuses.includes('PENDING')")

    # Letting the worker go: the watched run runs, and the page shows each status it takes.
    server.data(CANCEL_RUN, {"id": blocker})
    await page.wait_for_function("() => window.runqlStatuses.includes('SUCCESS')")
    assert await page.evaluate("() => window.runqlStatuses") == ["PENDING", "RUNNING", "SUCCESS"]
    await response.get_by_text('"status": "SUCCESS"').wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "graphiql.png")

    # Over graphql-transport-ws on runql's own /graphql, completing after the terminal status.
    pushed = [
        f["payload"]["data"]["runStatus"]["status"]
        for f in traffic.frames
        if f.get("type") == "next"
    ]
    assert pushed == ["PENDING", "RUNNING", "SUCCESS"]
    assert traffic.frames[-1]["type"] == "complete"
    assert traffic.websockets == [server.graphql_url.replace("http://", "ws://")]

    # Everything came from runql: no CDN, nothing failed, no script or CSP error.
    assert traffic.outside == []
    assert {urlsplit(url).hostname for url in traffic.requests} == {"127.0.0.1"}
    assert any(
        "/graphql/static/graphiql-" in url and url.endswith(".js") for url in traffic.requests
    )
    assert traffic.failed == []
    assert traffic.console_errors == []


async def test_graphiql_shows_a_streaming_agent_s_text_grow_before_its_run_ends(
    server: LiveServer, browser: Browser
) -> None:
    traffic = Traffic()
    page = await _open(browser, server.graphql_url, traffic)
    await page.locator(".graphiql-query-editor").get_by_text("query Feed").wait_for()

    # The demo's Typist streams its answer a word at a time; the README's subscription shows
    # the run as it is at each event, its text so far.
    watched = _new_run(server, _echo_agent(server, "Typist"), TYPED)
    await _replace_query(
        page,
        f'subscription Typing {{\n  runEvents(runId: "{watched}") {{\n    seq\n    type\n'
        "    run {\n      status\n      messageGroup {\n        messages {\n"
        "          content { parts { text } }\n        }\n      }\n    }\n  }\n}\n",
        "Typing",
    )
    await page.evaluate(WATCH_TEXT)
    await page.locator(".graphiql-execute-button").click()
    await page.wait_for_function(
        "() => window.runqlTexts.some(([status]) => status === 'SUCCESS')", timeout=TIMEOUT_MS
    )
    shown: list[list[str]] = await page.evaluate("() => window.runqlTexts")
    typing = [text for status, text in shown if status == "RUNNING" and text]
    assert len(set(typing)) >= 3, shown  # the text grew, in view, while the run was running
    assert all(TYPED.startswith(text) and text != TYPED for text in typing[:-1]), shown
    assert [len(text) for text in typing] == sorted(len(text) for text in typing), shown
    assert shown[-1] == ["SUCCESS", TYPED]
    assert traffic.console_errors == []
