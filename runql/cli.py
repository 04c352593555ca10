"""`runql` (or `python -m runql`): serve, worker, migrate, demo, export-schema."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from runql.settings import Settings, SettingsError


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from runql.app import create_app

    host, port = args.host or settings.host, args.port or settings.port
    print(f"runql: GraphiQL and the API at http://{host}:{port}/graphql", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from runql.lifecycle.worker import run_worker

    concurrency = args.concurrency or settings.workers or 1
    print(f"runql: worker executing up to {concurrency} runs at once; stop with Ctrl-C or "
          "SIGTERM", flush=True)
    asyncio.run(run_worker(settings, concurrency))
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from runql.storage.migrate import upgrade

    upgrade(settings.database_url)
    print("runql: the database is migrated to the latest revision")
    return 0


async def _load_demo(settings: Settings, runs: int, only_if_empty: bool) -> int | None:
    from runql.demo import is_empty, load_demo
    from runql.storage.database import Database

    database = Database.from_url(settings.database_url)
    try:
        if only_if_empty and not await is_empty(database):
            return None
        return await load_demo(database, runs=runs, seed=None, progress=runs >= 1000)
    finally:
        await database.dispose()


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    loaded = asyncio.run(_load_demo(settings, args.runs, args.if_empty))
    if loaded is None:
        print("runql: the database already holds runs; no demo data added")
    else:
        print(f"runql: loaded {loaded} demo runs")
    return 0


def _export_schema(_settings: Settings, args: argparse.Namespace) -> int:
    from runql.schema.schema import schema_sdl

    sdl = schema_sdl()
    if args.output:
        Path(args.output).write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runql", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve GraphQL and GraphiQL")
    serve.add_argument("--host", help="address to listen on (default: RUNQL_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RUNQL_PORT or 8000)")
    serve.set_defaults(handler=_serve)
    worker = commands.add_parser("worker", help="execute runs (without serving the API)")
    worker.add_argument("--concurrency", type=int,
                        help="runs executed at once (default: RUNQL_WORKERS, else 1)")
    worker.set_defaults(handler=_worker)
    migrate = commands.add_parser("migrate", help="migrate the database to the latest revision")
    migrate.set_defaults(handler=_migrate)
    demo = commands.add_parser("demo", help="load demo data")
    demo.add_argument("--runs", type=int, default=200, help="how many runs (default 200)")
    demo.add_argument("--if-empty", action="store_true",
                      help="load only when the database holds no runs")
    demo.set_defaults(handler=_demo)
    export = commands.add_parser("export-schema", help="print the schema in SDL")
    export.add_argument("--output", help="write to this file instead of standard output")
    export.set_defaults(handler=_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"runql: {error}", file=sys.stderr)
        return 2
    return int(args.handler(settings, args))
