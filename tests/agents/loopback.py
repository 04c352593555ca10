"""A webhook's far end for tests: a real uvicorn server in the test's event loop, on a free
loopback port, serving one POST route."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@asynccontextmanager
async def serving(
    handle: Callable[[Request], Awaitable[Response]], **config: Any
) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    """The started server answering POST /hook with `handle`, and its port; stopped after."""
    app = Starlette(routes=[Route("/hook", handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield server, sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
