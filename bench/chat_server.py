"""An OpenAI-compatible Chat Completions server on loopback, for the `openai` agent's tests and
bench/stream.py: `POST /v1/chat/completions` with `stream: true` answers real SSE chunks
(`data: {...}`, then `data: [DONE]`), the usage in a last chunk of no choices when the request
asks for it (`stream_options.include_usage`).

Each request takes the next `Reply` of the server's script (then `default`): how many tokens at
what rate, or a scripted failure (a status such as 429 or 500, an error chunk, a malformed
chunk, a wait before the first token, a dropped connection). The server records what it was
sent, when it sent each token and when a client went away (`Seen`). A raw ASGI app, so the
benchmark measures the agent rather than a framework.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

PATH = "/v1/chat/completions"
HELD_POLL_S = 0.005
Scope = dict[str, Any]


@dataclass
class Reply:
    """What the server does for one request."""

    tokens: int = 5
    tokens_per_s: float = 0.0  # 0: as fast as it can
    status: int = 200  # anything else: an OpenAI-style error body with this status
    headers: dict[str, str] = field(default_factory=dict)
    first_token_after_s: float = 0.0  # a slow start: headers at once, the first token later
    held: threading.Event | None = None  # if given, no token is sent until it is set
    error_after: int | None = None  # an error chunk after this many tokens
    malformed_after: int | None = None  # a chunk that is not JSON after this many tokens
    misshapen_after: int | None = None  # a chunk whose choices are not a list
    drop_after: int | None = None  # the connection cut after this many tokens
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # each {id, name, arguments}
    done: bool = True  # end with finish_reason, usage and [DONE]


def token(index: int) -> str:
    """The text of the server's token `index`."""
    return f"tok{index} "


def text_of(tokens: int) -> str:
    return "".join(token(index) for index in range(tokens))


@dataclass
class Seen:
    """One request: its body and headers, when each token left, when the client went away."""

    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int | None = None  # which connection it came on
    sent: list[float] = field(default_factory=list)  # time.monotonic() of each token
    disconnected_at: float | None = None
    finished: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)


def _chunk(model: str, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
    document = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + json.dumps(document).encode() + b"\n\n"


def _delta(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _chunk(model, [{"index": 0, "delta": delta, "finish_reason": finish}])


def _tool_chunks(model: str, calls: list[dict[str, Any]]) -> list[bytes]:
    """Each call in two chunks: its id and name, then its arguments in two fragments."""
    chunks = []
    for index, call in enumerate(calls):
        start = {"index": index, "id": call["id"], "type": "function"}
        start["function"] = {"name": call["name"], "arguments": ""}
        chunks.append(_delta(model, {"tool_calls": [start]}))
        arguments = call["arguments"]
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            fragment = {"index": index, "function": {"arguments": piece}}
            chunks.append(_delta(model, {"tool_calls": [fragment]}))
    return chunks


class ChatServer:
    """The ASGI app. `script` replies are used in order, then `default`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self.script: deque[Reply] = deque()
        self.seen: list[Seen] = []

    def reply(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        if scope["path"] != PATH or scope["method"] != "POST":
            await _respond(send, 404, {"error": {"message": "not found", "type": "not_found"}})
            return
        client = scope.get("client")
        seen = Seen(json.loads(body), headers, client[1] if client else None)
        self.seen.append(seen)
        reply = self.script.popleft() if self.script else self.default
        watcher = asyncio.create_task(_watch(receive, seen))
        try:
            await self._answer(reply, seen, send)
        finally:
            watcher.cancel()

    async def _answer(self, reply: Reply, seen: Seen, send: Any) -> None:
        if reply.status != 200:
            error = {"message": f"scripted {reply.status}", "type": "scripted", "code": None}
            await _respond(send, reply.status, {"error": error}, reply.headers)
            return
        model = str(seen.body.get("model", ""))
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        headers += [(key.encode(), value.encode()) for key, value in reply.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await _send(send, _delta(model, {"role": "assistant", "content": ""}))
        if reply.first_token_after_s and await _gone_within(seen, reply.first_token_after_s):
            return
        while reply.held is not None and not reply.held.is_set():  # set from another thread
            if await _gone_within(seen, HELD_POLL_S):
                return
        interval = 1 / reply.tokens_per_s if reply.tokens_per_s else 0.0
        started = time.monotonic()
        for index in range(reply.tokens):
            if await self._scripted_failure(reply, index, model, send):
                return
            if interval and await _gone_within(seen, started + index * interval - time.monotonic()):
                return
            if seen.gone.is_set():
                return
            await _send(send, _delta(model, {"content": token(index)}))
            seen.sent.append(time.monotonic())
        if await self._scripted_failure(reply, reply.tokens, model, send):
            return
        for chunk in _tool_chunks(model, reply.tool_calls):
            await _send(send, chunk)
        if reply.done:
            await self._finish(reply, seen, model, send)
        await send({"type": "http.response.body", "body": b""})
        seen.finished = True

    async def _finish(self, reply: Reply, seen: Seen, model: str, send: Any) -> None:
        finish = "tool_calls" if reply.tool_calls else "stop"
        await _send(send, _delta(model, {}, finish))
        options = seen.body.get("stream_options") or {}
        if options.get("include_usage"):
            prompt = len(json.dumps(seen.body.get("messages", []))) // 4
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": reply.tokens,
                "total_tokens": prompt + reply.tokens,
            }
            await _send(send, _chunk(model, [], usage))
        await _send(send, b"data: [DONE]\n\n")

    async def _scripted_failure(self, reply: Reply, index: int, model: str, send: Any) -> bool:
        if reply.error_after == index:
            error = {"message": "scripted failure mid-stream", "type": "server_error"}
            await _send(send, b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
            await send({"type": "http.response.body", "body": b""})
            return True
        if reply.malformed_after == index:
            await _send(send, b'data: {"choices": [{"delta": \n\n')
            await send({"type": "http.response.body", "body": b""})
            return True
        if reply.misshapen_after == index:
            await _send(send, _chunk(model, "none"))  # type: ignore[arg-type]
            await send({"type": "http.response.body", "body": b""})
            return True
        if reply.drop_after == index:
            raise ConnectionAbortedError("scripted: the stream is dropped")
        return False


async def _watch(receive: Any, seen: Seen) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    seen.disconnected_at = time.monotonic()
    seen.gone.set()


async def _gone_within(seen: Seen, seconds: float) -> bool:
    """Wait up to `seconds`; True when the client went away meanwhile."""
    if seconds <= 0:
        return seen.gone.is_set()
    try:
        await asyncio.wait_for(seen.gone.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _send(send: Any, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _respond(
    send: Any, status: int, document: Any, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(key.encode(), value.encode()) for key, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _server(app: ChatServer, **config: Any) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app, log_level="critical", lifespan="off", ws="none", access_log=False, **config
        )
    )


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: ChatServer, **config: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn in this event loop; yields its base URL (`.../v1`)."""
    sock = _loopback_socket()
    server = _server(app, **config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        await task
        sock.close()


def serve_in_thread(app: ChatServer, **config: Any) -> tuple[uvicorn.Server, str]:
    """`app` served by uvicorn on a thread of its own (its own event loop), for a benchmark;
    stop it with `server.should_exit = True`."""
    sock = _loopback_socket()
    server = _server(app, **config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
