"""A webhook agent that streams its answer word by word as Server-Sent Events.
Serve it with `uvicorn examples.streaming_webhook:app --port 9000` and create an agent of
kind `webhook` with `{"url": "http://127.0.0.1:9000/agent"}` (loopback is allowed in
development)."""

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def agent(request: Request) -> StreamingResponse:
    run = await request.json()
    words = run["message"]["text"].split()

    async def events():
        yield {"type": "message"}
        for word in words:
            await asyncio.sleep(0.05)  # thinking
            yield {"type": "delta", "text": word + " "}
        yield {"type": "item", "key": "words", "value": len(words)}
        yield {"type": "cost", "amount": 0.001 * len(words), "unit": "usd"}
        yield {"type": "end"}

    async def sse():
        async for event in events():
            yield f"data: {json.dumps(event)}\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")


app = Starlette(routes=[Route("/agent", agent, methods=["POST"])])
