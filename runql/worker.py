"""`runql worker`: an executor in a process of its own, stopped by SIGTERM or SIGINT."""

import asyncio
import logging.config
import signal

from runql.operations.logs import uvicorn_log_config
from runql.runtime import Runtime
from runql.settings import Settings


async def run_worker(settings: Settings, concurrency: int) -> None:
    logging.config.dictConfig(uvicorn_log_config(settings))  # the server's log format
    runtime = Runtime.build(settings, concurrency=concurrency, serves_clients=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()
