"""Streaming webhooks: answers of `text/event-stream` and `application/x-ndjson` read event by
event, through `stream()` and through `run()`, against a real HTTP server on loopback; JSON
answers as before. And the README's example agent (examples/streaming_webhook.py, which
tests/examples/test_readme.py holds equal to its quote) runs."""

import asyncio
import importlib.util
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runql.agents.egress import EgressPolicy
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    AttachedValue,
    Attachment,
    AttachmentAdded,
    Cost,
    MessageStarted,
    Part,
    ReplyMessage,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    Turn,
    tool_message,
)
from runql.agents.webhook import WebhookAgent, WebhookKind, wire
from runql.enums import ActorType, AttachmentType, ContentPartType
from runql.settings import LOOPBACK
from tests.agents.loopback import serving
from tests.processes import ROOT

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"

EVENTS: list[dict[str, Any]] = [
    {"type": "message"},
    {"type": "delta", "text": "Two plus two "},
    {"type": "delta", "text": "is four."},
    {"type": "attachment", "attachment": {"type": "link", "url": "https://example.com/sum"}},
    {"type": "tool_call", "name": "add", "arguments": {"a": 2, "b": 2}, "id": "c1"},
    {"type": "tool_result", "name": "add", "result": 4, "id": "c1"},
    {"type": "message", "part_type": "code"},
    {"type": "delta", "text": "2 + 2"},
    {"type": "item", "key": "answer", "value": {"n": 4}},
    {"type": "cost", "amount": 0.5, "unit": "usd"},
    {"type": "cost", "amount": 0.75, "unit": "usd"},
    {"type": "end"},
]
STREAMED: list[StreamEvent] = [
    MessageStarted(),
    TextDelta("Two plus two "),
    TextDelta("is four."),
    AttachmentAdded(Attachment(AttachmentType.LINK, url="https://example.com/sum")),
    ToolCall("add", {"a": 2, "b": 2}, "c1"),
    ToolResult("add", 4, "c1"),
    MessageStarted(ContentPartType.CODE),
    TextDelta("2 + 2"),
    AttachedValue("answer", {"n": 4}),
    Cost(0.5, "usd"),
    Cost(0.75, "usd"),
]


def _json_part(document: Any) -> Part:
    return Part(json.dumps(document, separators=(",", ":")), ContentPartType.JSON)


COLLECTED = AgentReply(
    messages=(
        ReplyMessage(
            (Part("Two plus two is four."),),
            (Attachment(AttachmentType.LINK, url="https://example.com/sum"),),
        ),
        tool_message(ToolCall("add", {"a": 2, "b": 2}, "c1")),
        tool_message(ToolResult("add", 4, "c1")),
        ReplyMessage((Part("2 + 2", ContentPartType.CODE),)),
    ),
    attached_items=(AttachedValue("answer", {"n": 4}),),
    cost=Cost(0.75, "usd"),
)


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [f"data: {json.dumps(event)}\n\n".encode() for event in events]


def ndjson(*events: dict[str, Any]) -> list[bytes]:
    return [json.dumps(event).encode() + b"\n" for event in events]


@dataclass
class Answer:
    """One answer of the hook: a status, a media type and its body's chunks, each sent after
    `pause_s`."""

    chunks: list[bytes]
    media_type: str = SSE
    status: int = 200
    pause_s: float = 0.0


@dataclass
class StreamingHook:
    script: deque[Answer] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    closed_at: list[float] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        self.requests.append({"headers": dict(request.headers), "body": await request.json()})
        answer = self.script.popleft()
        if answer.media_type == "application/json":
            return Response(b"".join(answer.chunks), answer.status, media_type=answer.media_type)

        async def body() -> AsyncIterator[bytes]:
            try:
                for chunk in answer.chunks:
                    if answer.pause_s:
                        await asyncio.sleep(answer.pause_s)
                    yield chunk
            finally:
                self.closed_at.append(time.monotonic())
                self.closed.set()

        return StreamingResponse(body(), answer.status, media_type=answer.media_type)


@pytest.fixture
async def hook() -> AsyncIterator[StreamingHook]:
    hook = StreamingHook()
    async with serving(hook.handle) as (_, port):
        hook.url = f"http://127.0.0.1:{port}/hook"
        yield hook


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., WebhookAgent]]:
    made: list[WebhookAgent] = []

    def agent(url: str, **config: Any) -> WebhookAgent:
        made.append(WebhookKind(EgressPolicy(LOOPBACK)).create({"url": url, **config}))
        return made[-1]

    yield agent
    for agent_made in made:
        await agent_made.aclose()


def request(text: str = "What is 2 + 2?") -> AgentRequest:
    return AgentRequest(
        run_id="run_1",
        agent_id="agent_1",
        thread_id="thread_1",
        message=Turn(ActorType.USER, "Ada", (Part(text),)),
        history=(),
    )


async def streamed(agent: WebhookAgent, text: str = "What is 2 + 2?") -> list[StreamEvent]:
    return [event async for event in agent.stream(request(text))]


async def failure(agent: WebhookAgent) -> AgentError:
    with pytest.raises(AgentError) as caught:
        await streamed(agent)
    return caught.value


@pytest.mark.parametrize(("media_type", "encode"), [(SSE, sse), (NDJSON, ndjson)])
async def test_a_streamed_answer_through_stream_and_run(
    hook: StreamingHook, make, media_type: str, encode: Callable[..., list[bytes]]
) -> None:
    hook.script.extend([Answer(encode(*EVENTS), media_type), Answer(encode(*EVENTS), media_type)])
    agent = make(hook.url)
    assert await streamed(agent) == STREAMED
    assert await agent.run(request()) == COLLECTED
    assert SSE in hook.requests[0]["headers"]["accept"]


async def test_sse_framing(hook: StreamingHook, make) -> None:
    """Comments, event/id fields, CRLF line ends, data split over lines and chunks, events
    after `end` ignored."""
    body = (
        b": keep-alive\r\n\r\n"
        b'event: delta\r\nid: 1\r\ndata: {"type": "delta",\r\ndata:  "text": "a"}\r\n\r\n'
        b'data: {"type": "delta", "text": "b"}\n\ndata: {"type": "end"}\n\n'
        b'data: {"type": "delta", "text": "ignored"}\n\n'
    )
    hook.script.append(Answer([body[:30], body[30:71], body[71:]]))
    assert await streamed(make(hook.url)) == [TextDelta("a"), TextDelta("b")]


async def test_a_json_answer_is_as_before(hook: StreamingHook, make) -> None:
    reply = {
        "messages": [{"parts": [{"text": "one"}, {"type": "code", "text": "x = 1"}]}],
        "cost": {"amount": 1, "unit": "credits"},
    }
    body = [json.dumps(reply).encode()]
    hook.script.extend([Answer(body, "application/json"), Answer(body, "application/json")])
    agent = make(hook.url)
    whole = await agent.run(request())
    message = ReplyMessage((Part("one"), Part("x = 1", ContentPartType.CODE)))
    assert whole.messages == (message,)
    # through stream(): the message whole, with its two parts, then the cost
    assert await streamed(agent) == [message, Cost(1.0, "credits")]


@pytest.mark.parametrize(
    ("event", "said"),
    [
        ({"type": "delta", "text": 5}, "event 2 (delta) does not fit: text must be a string"),
        ({"type": "delta", "text": "a\u0000"}, "event 2 (delta) does not fit: text holds a NUL"),
        ({"type": "cost", "amount": -1, "unit": "usd"}, "amount must be a number from 0 up"),
        ({"type": "item", "value": 1}, "event 2 (item) does not fit: key is missing"),
        ({"type": "think"}, 'event 2 does not fit: its type must be one of "message"'),
        ({"text": "no type"}, "event 2 does not fit: its type must be one of"),
    ],
)
async def test_a_bad_event_ends_the_run_naming_it(
    hook: StreamingHook, make, event: dict[str, Any], said: str
) -> None:
    hook.script.append(Answer(sse({"type": "delta", "text": "ok"}, event, {"type": "end"})))
    error = await failure(make(hook.url))
    assert error.code == "invalid_reply"
    assert said in error.message


async def test_an_event_that_is_not_json(hook: StreamingHook, make) -> None:
    hook.script.append(Answer([b"{nope}\n"], NDJSON))
    error = await failure(make(hook.url))
    assert (error.code, error.message) == (
        "invalid_reply",
        "The agent's event 1 does not fit: it is not JSON.",
    )


async def test_an_error_event_ends_the_run_with_its_code(hook: StreamingHook, make) -> None:
    error_event = {"type": "error", "code": "model_overloaded", "message": "Try again later."}
    hook.script.append(Answer(sse({"type": "delta", "text": "par"}, error_event)))
    agent = make(hook.url)
    seen: list[StreamEvent] = []

    async def follow() -> None:
        async for event in agent.stream(request()):
            seen.append(event)

    with pytest.raises(AgentError) as caught:
        await follow()
    assert seen == [TextDelta("par")]
    assert (caught.value.code, caught.value.message) == ("model_overloaded", "Try again later.")


async def test_a_stream_without_end_is_an_error(hook: StreamingHook, make) -> None:
    hook.script.append(Answer(sse({"type": "delta", "text": "cut"})))
    error = await failure(make(hook.url))
    assert error.code == "stream_interrupted"
    assert "without an end event" in error.message


async def test_a_silent_stream_times_out(hook: StreamingHook, make) -> None:
    hook.script.append(Answer(sse({"type": "delta", "text": "a"}, {"type": "end"}), pause_s=2))
    error = await failure(make(hook.url, timeout_s=0.3))
    assert error.code == "agent_timeout"


async def test_an_event_too_long_is_refused(hook: StreamingHook, make) -> None:
    hook.script.append(Answer([b"x" * (1024 * 1024 + 10)], NDJSON))
    error = await failure(make(hook.url))
    assert error.code == "invalid_reply"
    assert "an event is longer than 1 MB" in error.message


async def test_retried_before_the_stream_only(hook: StreamingHook, make) -> None:
    done = sse({"type": "delta", "text": "ok"}, {"type": "end"})
    hook.script.extend([Answer([b"busy"], "text/plain", status=503), Answer(done)])
    assert await streamed(make(hook.url, retries=1)) == [TextDelta("ok")]
    assert len(hook.requests) == 2
    hook.script.extend([Answer(sse({"type": "delta", "text": "cut"})), Answer(done)])
    assert (await failure(make(hook.url, retries=2))).code == "stream_interrupted"
    assert len(hook.requests) == 3


async def test_aclose_closes_the_http_stream_within_a_second(hook: StreamingHook, make) -> None:
    words = [{"type": "delta", "text": f"w{index} "} for index in range(500)]
    hook.script.append(Answer(sse(*words, {"type": "end"}), pause_s=0.02))
    stream = make(hook.url).stream(request())
    async for event in stream:
        if event == TextDelta("w2 "):
            break
    closed = time.monotonic()
    await stream.aclose()
    await asyncio.wait_for(hook.closed.wait(), 1)
    assert hook.closed_at[0] - closed < 1.0


async def test_the_readme_example_agent_streams(make) -> None:
    spec = importlib.util.spec_from_file_location(
        "streaming_webhook", ROOT / "examples" / "streaming_webhook.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    app = example.app
    route = app.routes[0]
    async with serving(route.endpoint) as (_, port):
        agent = make(f"http://127.0.0.1:{port}/hook")
        events = await streamed(agent, "hello streaming world")
        reply = await agent.run(request("hello streaming world"))
    assert events[:4] == [
        MessageStarted(),
        TextDelta("hello "),
        TextDelta("streaming "),
        TextDelta("world "),
    ]
    assert reply.messages == (ReplyMessage((Part("hello streaming world "),)),)
    assert reply.attached_items == (AttachedValue("words", 3),)
    assert reply.cost == Cost(0.003, "usd")


def test_the_event_schema_describes_every_event() -> None:
    schema = wire.schemas()["event"]
    jsonschema.Draft202012Validator.check_schema(schema)
    for event in EVENTS:
        jsonschema.validate(event, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "delta"}, schema)
