"""`runql serve`: uvicorn in this process, or uvicorn's supervisor of N processes that share
one listening socket (`--workers N`, RUNQL_SERVE_WORKERS), on runql's HTTP protocol
(runql/protocol.py: planned POSTs answered below ASGI).

The supervisor binds the socket once and spawns each process, which imports `process_app`
and builds its own app from the same environment: its own database pool, hub, feeder of other
processes' events, executor (RUNQL_WORKERS slots each), rate limiter and persisted queries.
It restarts a process that dies (logging "Child process [PID] died"), stops them all with
SIGTERM when it gets SIGTERM or SIGINT, and gives up when a process fails to start.
"""

from typing import Any

import uvicorn
from starlette.applications import Starlette

from runql.app import create_app
from runql.operations.logs import uvicorn_log_config
from runql.protocol import RunqlProtocol
from runql.settings import Settings, SettingsError
from runql.storage.database import in_memory


def serve(settings: Settings, host: str, port: int, processes: int) -> None:
    if processes > 1 and in_memory(settings.database_url):
        raise SettingsError(
            "an in-memory SQLite database lives in one process: serve it with "
            "--workers 1 (RUNQL_SERVE_WORKERS=1), or use a file"
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": uvicorn_log_config(settings),
        "access_log": False,
        "ws_per_message_deflate": settings.ws_compression,
        "workers": processes,
        "http": RunqlProtocol,  # planned POSTs answered below ASGI: runql/protocol.py
    }
    if processes == 1:
        uvicorn.run(create_app(settings, freeze_gc=True), **options)
    else:
        uvicorn.run(f"{__name__}:process_app", factory=True, **options)


def process_app() -> Starlette:
    """The app of one of the supervisor's processes (spawned, it reads the environment)."""
    return create_app(Settings.from_env(), freeze_gc=True)
