"""The webhook agent against a real HTTP server on a loopback port."""

import asyncio
import json
import math
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from runql.agents.egress import EgressPolicy
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    AttachedValue,
    Attachment,
    Cost,
    InvalidConfig,
    Part,
    ReplyMessage,
    Turn,
)
from runql.agents.webhook import WebhookAgent, WebhookConfig, WebhookKind
from runql.enums import ActorType, AttachmentType, ContentPartType
from runql.settings import LOOPBACK
from tests.agents.loopback import serving

RUN_ID = "run_01HZX3K9Q2"


@dataclass
class Scripted:
    """One response the hook gives, in order; when the script runs out it answers 200 ok."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait until the test ends before answering


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Hook:
    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.requests: list[Received] = []
        self.release = asyncio.Event()
        self.url = ""

    def reply(self, *responses: Scripted) -> None:
        self.script.extend(responses)

    async def handle(self, request: Request) -> Response:
        self.requests.append(Received(dict(request.headers), await request.body()))
        scripted = self.script.popleft() if self.script else Scripted(json={"text": "ok"})
        if scripted.hang:
            await self.release.wait()
        content = scripted.body
        if content is None:
            content = json.dumps(scripted.json).encode()
        return Response(content, scripted.status, scripted.headers, media_type="application/json")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    hook = Hook()
    async with serving(hook.handle) as (_, port):
        hook.url = f"http://127.0.0.1:{port}/hook"
        try:
            yield hook
        finally:
            hook.release.set()  # before the server stops: a hanging request ends


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://alice:s3cr3t-pass@127.0.0.1:{sock.getsockname()[1]}/hook?key=q-token-1"
    finally:
        sock.close()


_made: list[WebhookAgent] = []


def agent(url: str, **config: Any) -> WebhookAgent:
    """A webhook agent on `url` (loopback allowed), closed when the test ends."""
    made = WebhookKind(EgressPolicy(LOOPBACK)).create({"url": url, **config})
    _made.append(made)
    return made


@pytest.fixture(autouse=True)
async def _close_agents() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().aclose()


def make_request() -> AgentRequest:
    question = Turn(
        ActorType.USER,
        "Ada Lovelace",
        (Part("Summarise this file"), Part("print(1)", ContentPartType.CODE)),
        (Attachment(AttachmentType.FILE, file_id="file_1", caption="report"),),
    )
    history = (
        Turn(ActorType.USER, "Ada Lovelace", (Part("Hello"),)),
        Turn(
            ActorType.AGENT,
            "Support Assistant",
            (Part("**Hi**", ContentPartType.MARKDOWN),),
            (Attachment(AttachmentType.LINK, url="https://example.com/a"),),
        ),
    )
    return AgentRequest(
        run_id=RUN_ID,
        agent_id="agent_1",
        thread_id="thread_1",
        message=question,
        history=history,
        language="en",
        country="GB",
        timezone="Europe/London",
        metadata={"source": "test", "priority": 2},
        raw_inputs={"question": "Summarise"},
    )


async def test_full_shape_request_and_reply(hook: Hook) -> None:
    hook.reply(
        Scripted(
            json={
                "messages": [
                    {
                        "parts": [
                            {"type": "markdown", "text": "# Summary"},
                            {"type": "json", "text": '{"a": 1}'},
                        ],
                        "attachments": [
                            {
                                "type": "image",
                                "url": "https://cdn.example/x.png",
                                "caption": "chart",
                            },
                            {"type": "file", "file_id": "file_9"},
                        ],
                    },
                    {"parts": [{"type": "text", "text": "Anything else?"}]},
                ],
                "attached_items": [
                    {"key": "ticket", "value": {"id": 42, "tags": ["a", None]}},
                    {"key": "empty", "value": None},
                ],
                "cost": {"amount": 0.25, "unit": "usd"},
            }
        )
    )
    webhook = agent(hook.url, headers={"Authorization": "Bearer t0ken", "X-Tenant": "acme"})

    reply = await webhook.run(make_request())

    assert reply == AgentReply(
        messages=(
            ReplyMessage(
                (
                    Part("# Summary", ContentPartType.MARKDOWN),
                    Part('{"a": 1}', ContentPartType.JSON),
                ),
                (
                    Attachment(
                        AttachmentType.IMAGE, url="https://cdn.example/x.png", caption="chart"
                    ),
                    Attachment(AttachmentType.FILE, file_id="file_9"),
                ),
            ),
            ReplyMessage((Part("Anything else?", ContentPartType.TEXT),)),
        ),
        attached_items=(
            AttachedValue("ticket", {"id": 42, "tags": ["a", None]}),
            AttachedValue("empty", None),
        ),
        cost=Cost(0.25, "usd"),
    )
    assert len(hook.requests) == 1
    received = hook.requests[0]
    assert received.headers["content-type"] == "application/json"
    assert received.headers["idempotency-key"] == RUN_ID
    assert received.headers["authorization"] == "Bearer t0ken"
    assert received.headers["x-tenant"] == "acme"
    assert received.json == {
        "run": {
            "id": RUN_ID,
            "agent_id": "agent_1",
            "thread_id": "thread_1",
            "language": "en",
            "country": "GB",
            "timezone": "Europe/London",
            "metadata": {"source": "test", "priority": 2},
            "raw_inputs": {"question": "Summarise"},
        },
        "message": {
            "actor": {"type": "user", "name": "Ada Lovelace"},
            "text": "Summarise this file\nprint(1)",
            "parts": [
                {"type": "text", "text": "Summarise this file"},
                {"type": "code", "text": "print(1)"},
            ],
            "attachments": [
                {"type": "file", "file_id": "file_1", "url": None, "caption": "report"}
            ],
        },
        "history": [
            {
                "actor": {"type": "user", "name": "Ada Lovelace"},
                "text": "Hello",
                "parts": [{"type": "text", "text": "Hello"}],
                "attachments": [],
            },
            {
                "actor": {"type": "agent", "name": "Support Assistant"},
                "text": "**Hi**",
                "parts": [{"type": "markdown", "text": "**Hi**"}],
                "attachments": [
                    {
                        "type": "link",
                        "file_id": None,
                        "url": "https://example.com/a",
                        "caption": None,
                    }
                ],
            },
        ],
    }


async def test_text_shorthand(hook: Hook) -> None:
    hook.reply(Scripted(json={"text": "Done."}))

    reply = await agent(hook.url).run(make_request())

    assert reply == AgentReply(messages=(ReplyMessage((Part("Done.", ContentPartType.TEXT),)),))


async def test_error_object_in_4xx_is_passed_on_without_retry(hook: Hook) -> None:
    hook.reply(
        Scripted(
            422, {"error": {"code": "unsupported_language", "message": "Klingon is not supported."}}
        )
    )

    with pytest.raises(AgentError) as caught:
        await agent(hook.url, retries=3).run(make_request())

    assert caught.value.code == "unsupported_language"
    assert caught.value.message == "Klingon is not supported."
    assert len(hook.requests) == 1


async def test_4xx_without_error_object_is_rejected(hook: Hook) -> None:
    hook.reply(Scripted(404, body=b"not here"))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "agent_rejected"
    assert "404" in caught.value.message
    assert len(hook.requests) == 1


async def test_error_message_never_repeats_configured_secrets(hook: Hook) -> None:
    hook.reply(
        Scripted(
            401,
            {"error": {"code": "unauthorized", "message": "Bad token Bearer sk-live-123456789"}},
        )
    )

    with pytest.raises(AgentError) as caught:
        await agent(hook.url, headers={"Authorization": "Bearer sk-live-123456789"}).run(
            make_request()
        )

    assert caught.value.code == "unauthorized"
    assert "sk-live-123456789" not in caught.value.message


async def test_500_then_200_is_retried(hook: Hook) -> None:
    hook.reply(Scripted(500, {"oops": True}), Scripted(json={"text": "second time lucky"}))

    reply = await agent(hook.url, retries=2).run(make_request())

    assert reply.messages[0].parts[0].text == "second time lucky"
    assert len(hook.requests) == 2
    assert {r.headers["idempotency-key"] for r in hook.requests} == {RUN_ID}
    assert hook.requests[0].body == hook.requests[1].body


@pytest.mark.parametrize("retries", [0, 2])
async def test_503_beyond_retries_is_unavailable(hook: Hook, retries: int) -> None:
    hook.reply(*[Scripted(503, {"busy": True})] * (retries + 3))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url, retries=retries).run(make_request())

    assert caught.value.code == "agent_unavailable"
    assert "503" in caught.value.message
    assert len(hook.requests) == retries + 1


async def test_retry_after_is_honoured(hook: Hook) -> None:
    hook.reply(Scripted(429, {}, headers={"Retry-After": "1"}), Scripted(json={"text": "ok"}))

    started = time.monotonic()
    reply = await agent(hook.url, retries=1, timeout_s=5).run(make_request())

    assert reply.messages[0].parts[0].text == "ok"
    assert 0.9 <= time.monotonic() - started < 2.5
    assert len(hook.requests) == 2


async def test_retry_after_past_the_timeout_gives_up_at_once(hook: Hook) -> None:
    hook.reply(Scripted(503, {}, headers={"Retry-After": "4"}))

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await agent(hook.url, retries=3, timeout_s=1).run(make_request())

    assert caught.value.code == "agent_unavailable"
    assert time.monotonic() - started < 0.8
    assert len(hook.requests) == 1


async def test_slow_server_times_out(hook: Hook) -> None:
    hook.reply(Scripted(hang=True))

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await agent(hook.url, timeout_s=0.5).run(make_request())

    elapsed = time.monotonic() - started
    assert caught.value.code == "agent_timeout"
    assert caught.value.message == "The agent did not answer within 0.5 seconds."
    assert 0.45 <= elapsed < 1.5


async def test_timeout_covers_retries(hook: Hook) -> None:
    hook.reply(Scripted(503, {}), Scripted(hang=True))

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await agent(hook.url, timeout_s=0.6, retries=5).run(make_request())

    assert caught.value.code == "agent_timeout"
    assert time.monotonic() - started < 1.6
    assert len(hook.requests) == 2


async def test_reply_that_is_not_json_is_invalid(hook: Hook) -> None:
    hook.reply(Scripted(body=b"<html>hello</html>"))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "invalid_reply"
    assert "not JSON" in caught.value.message
    assert len(hook.requests) == 1


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ([{"text": "hi"}], "the reply must be an object"),
        ({"answer": "hi"}, "neither"),
        ({"text": 5}, "text must be a string"),
        ({"text": "a", "messages": []}, "both"),
        ({"messages": {"parts": []}}, "messages must be a list"),
        (
            {"messages": [{"parts": [{"type": "html", "text": "x"}]}]},
            "messages[0].parts[0].type must be one of text, markdown, code, json",
        ),
        ({"messages": [{"parts": [{"type": "text"}]}]}, "messages[0].parts[0].text"),
        ({"messages": [{"parts": []}]}, "neither parts nor attachments"),
        (
            {"messages": [{"attachments": [{"type": "pdf", "file_id": "f"}]}]},
            "messages[0].attachments[0].type",
        ),
        ({"messages": [{"attachments": [{"type": "file"}]}]}, "file_id or a url"),
        ({"text": "a", "attached_items": [{"value": 1}]}, "attached_items[0].key"),
        ({"text": "a", "attached_items": [{"key": "k"}]}, "attached_items[0].value is missing"),
        ({"text": "a", "cost": {"amount": "1", "unit": "usd"}}, "cost.amount"),
        ({"text": "a", "cost": {"amount": 1}}, "cost.unit"),
    ],
)
async def test_reply_that_does_not_fit_is_invalid(
    hook: Hook, document: Any, complaint: str
) -> None:
    hook.reply(Scripted(json=document))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "invalid_reply"
    assert complaint in caught.value.message


async def test_nan_is_not_json(hook: Hook) -> None:
    hook.reply(Scripted(body=b'{"text": "a", "cost": {"amount": NaN, "unit": "usd"}}'))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "invalid_reply"


async def test_redirect_is_not_followed(hook: Hook) -> None:
    hook.reply(Scripted(307, {}, headers={"Location": "/elsewhere"}))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "invalid_reply"
    assert "307" in caught.value.message
    assert len(hook.requests) == 1


async def test_connection_refused_is_unavailable(refused_url: str) -> None:
    webhook = agent(refused_url, retries=1)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await webhook.run(make_request())

    assert time.monotonic() - started < 1.0
    assert caught.value.code == "agent_unavailable"
    assert "could not connect" in caught.value.message
    assert caught.value.metadata == {"attempts": 2}
    for secret in ("s3cr3t-pass", "alice", "q-token-1", "Traceback"):
        assert secret not in caught.value.message
        assert secret not in repr(webhook)


# --- config -----------------------------------------------------------------------------

URL = "https://agents.example.com/hook"


def test_defaults_are_filled_in() -> None:
    assert WebhookKind().validate_config({"url": URL}) == {
        "url": URL,
        "timeout_s": 30,
        "retries": 2,
        "headers": {},
    }


@pytest.mark.parametrize(
    "config",
    [
        {"url": "http://127.0.0.1:8787/agents/support", "timeout_s": 10},
        {"url": URL, "timeout_s": 300, "retries": 0},
        {"url": URL, "timeout_s": 0.5, "retries": 5},
        {"url": "HTTPS://user:pw@Example.com:8443/x?y=1", "headers": {"X-Api-Key": "k"}},
        {"url": "http://[::1]:9000/", "headers": {}},
    ],
)
def test_valid_configs(config: dict[str, Any]) -> None:
    checked = WebhookKind().validate_config(config)
    assert checked == {"timeout_s": 30, "retries": 2, "headers": {}, **config}


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({}, r"^url is required"),
        (
            {"url": URL, "method": "PUT"},
            r"webhook takes only url, timeout_s, retries, headers, "
            r"not method",
        ),
        ({"url": 5}, r"^url must be an absolute http or https URL with a host"),
        ({"url": "/relative/path"}, r"^url must be"),
        ({"url": "ftp://example.com/x"}, r"^url must be"),
        ({"url": "http://"}, r"^url must be"),
        ({"url": "https:///path-only"}, r"^url must be"),
        ({"url": "http://exa mple.com/"}, r"^url must be"),
        ({"url": " http://example.com/"}, r"^url must be"),
        ({"url": "http://example.com:99999/"}, r"^url must be"),
        ({"url": "http://example.com:port/"}, r"^url must be"),
        (
            {"url": URL, "timeout_s": 0},
            r"^timeout_s must be a number of seconds above 0 and at "
            r"most 300",
        ),
        ({"url": URL, "timeout_s": -1}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": 300.5}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": "30"}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": True}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": math.nan}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": math.inf}, r"^timeout_s must be"),
        ({"url": URL, "timeout_s": None}, r"^timeout_s must be"),
        ({"url": URL, "retries": -1}, r"^retries must be a whole number from 0 to 5"),
        ({"url": URL, "retries": 6}, r"^retries must be"),
        ({"url": URL, "retries": 1.5}, r"^retries must be"),
        ({"url": URL, "retries": 2.0}, r"^retries must be"),
        ({"url": URL, "retries": True}, r"^retries must be"),
        ({"url": URL, "retries": "2"}, r"^retries must be"),
        (
            {"url": URL, "headers": [["X-A", "b"]]},
            r"^headers must be an object of header names "
            r"to string values",
        ),
        ({"url": URL, "headers": {"X-A": 1}}, r"^headers: the value of X-A must be a string"),
        ({"url": URL, "headers": {"X-A": "a\r\nX-B: c"}}, r"^headers: the value of X-A"),
        ({"url": URL, "headers": {"X-A": "caf\u00e9"}}, r"^headers: the value of X-A"),
        (
            {"url": URL, "headers": {"bad name": "v"}},
            r"^headers: 'bad name' is not a valid "
            r"header name",
        ),
        ({"url": URL, "headers": {"": "v"}}, r"^headers: '' is not a valid header name"),
        (
            {"url": URL, "headers": {"Content-Type": "text/plain"}},
            r"^headers may not set Content-Type",
        ),
        ({"url": URL, "headers": {"idempotency-key": "x"}}, r"^headers may not set"),
        ({"url": URL, "headers": {"X-A": "1", "x-a": "2"}}, r"^headers names x-a more than once"),
    ],
)
def test_invalid_configs(config: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=pattern):
        WebhookKind().validate_config(config)


def test_create_validates() -> None:
    with pytest.raises(InvalidConfig, match="retries"):
        WebhookKind().create({"url": URL, "retries": 9})
    created = WebhookKind().create({"url": URL, "timeout_s": 5})
    assert created.config == WebhookConfig(url=URL, timeout_s=5, retries=2, headers={})


async def test_attached_items_must_be_a_list(hook: Hook) -> None:
    hook.reply(Scripted(json={"text": "a", "attached_items": 0}))

    with pytest.raises(AgentError, match=r"attached_items must be a list"):
        await agent(hook.url).run(make_request())


async def test_null_attached_items_and_cost_are_absent(hook: Hook) -> None:
    hook.reply(Scripted(json={"text": "a", "attached_items": None, "cost": None}))

    reply = await agent(hook.url).run(make_request())

    assert (reply.attached_items, reply.cost) == ((), None)


async def test_bad_content_encoding_is_invalid(hook: Hook) -> None:
    hook.reply(Scripted(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))

    with pytest.raises(AgentError) as caught:
        await agent(hook.url).run(make_request())

    assert caught.value.code == "invalid_reply"
