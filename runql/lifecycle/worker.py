"""`runql worker`: an executor in a process of its own, stopped by SIGTERM or SIGINT."""

import asyncio
import logging.config
import signal
from dataclasses import replace

from runql.agents.egress import EgressPolicy
from runql.agents.registry import default_registry
from runql.bus.feeders import feed_from_commits, other_processes
from runql.bus.hub import Hub
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.operations.logs import uvicorn_log_config
from runql.settings import Settings
from runql.storage.database import Database


async def run_worker(settings: Settings, concurrency: int) -> None:
    logging.config.dictConfig(uvicorn_log_config(settings))  # the server's log format
    database = Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    config = replace(ExecutorConfig.from_settings(settings), concurrency=concurrency)
    hub = Hub()
    feed_from_commits(hub, database)
    listener = other_processes(hub, database)
    registry = default_registry(EgressPolicy.from_settings(settings))
    executor = Executor(database, registry, config, hub=hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if listener is not None:
        await listener.start()
    await executor.start()
    try:
        await stop.wait()
    finally:
        await executor.stop()
        if listener is not None:
            await listener.stop()
        await database.dispose()
