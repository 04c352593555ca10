"""`runql` (or `python -m runql`): serve, worker, keys, migrate, demo, export-schema,
settings-table."""

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runql.settings import Settings, SettingsError, allowed
from runql.text import text_problem

if TYPE_CHECKING:
    from runql.storage.database import Database


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from runql.serving import serve

    host, port = args.host or settings.host, args.port or settings.port
    processes = args.workers or settings.server_processes
    if settings.is_development:  # once, here: the processes serve the key this made
        secret, _ = asyncio.run(_dev_key(settings))
        print(f"runql: development key (GraphiQL sends it for you): {secret}", flush=True)
    print(
        f"runql: GraphiQL and the API at http://{host}:{port}/graphql "
        f"({processes} process{'es' if processes > 1 else ''})",
        flush=True,
    )
    try:
        serve(settings, host, port, processes)
    except SettingsError as error:
        print(f"runql: {error}", file=sys.stderr)
        return 2
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from runql.worker import run_worker

    concurrency = args.concurrency or settings.workers or 1
    print(
        f"runql: worker executing up to {concurrency} runs at once; stop with Ctrl-C or SIGTERM",
        flush=True,
    )
    asyncio.run(run_worker(settings, concurrency))
    return 0


async def _dev_key(settings: Settings) -> tuple[str, bool]:
    from runql.auth.devkey import read_dev_key, valid_or_new, write_dev_key

    path = Path(settings.dev_key_file)
    async with _database(settings) as database:
        secret, made = await valid_or_new(database, read_dev_key(path))
    if made:
        write_dev_key(path, secret)
    return secret, made


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator["Database"]:
    from runql.storage.database import Database

    database = Database.from_url(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from runql.auth.keys import create_key, list_keys, revoke_key
    from runql.errors import RunqlError

    async with _database(settings) as database:
        if args.action == "create":
            made = await create_key(database, args.name, args.org)
            print(
                f"runql: key {made.row.id} for organization {args.org!r}; its secret, shown "
                f"this once:\n{made.secret}"
            )
        elif args.action == "list":
            for key, org in await list_keys(database):
                state = "revoked" if key.revoked_at else "active"
                print(f"{key.id}  {key.hint:16}  {state:8}  {org:20}  {key.name}")
        else:
            try:
                key = await revoke_key(database, args.id)
            except RunqlError as error:
                print(f"runql: {error.message}", file=sys.stderr)
                return 1
            print(f"runql: key {key.id} is revoked")
    return 0


def _keys_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_keys(args, settings))


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from runql.storage.migrate import upgrade

    upgrade(settings.database_url)
    print("runql: the database is migrated to the latest revision")
    return 0


async def _load_demo(settings: Settings, runs: int, only_if_empty: bool) -> int | None:
    from runql.demo import is_empty, load_demo

    async with _database(settings) as database:
        if only_if_empty and not await is_empty(database):
            return None
        return await load_demo(database, runs=runs, seed=None, progress=runs >= 1000)


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


def _settings_table(_settings: Settings, _args: argparse.Namespace) -> int:
    from runql.settings import markdown_table

    sys.stdout.write(markdown_table())
    return 0


def _as_setting(name: str) -> Callable[[str], Any]:
    """An argument checked as the setting `name` is, with the same words when refused."""

    def parse(raw: str) -> Any:
        try:
            return getattr(Settings().replace(**{name: raw}), name)
        except SettingsError:
            rule = allowed(Settings.model_fields[name])
            raise argparse.ArgumentTypeError(f"must be {rule}, not {raw!r}") from None

    return parse


def _text(value: str) -> str:
    """An argument's text, by runql.text's rule (bytes that are not UTF-8 arrive as lone
    surrogates)."""
    problem = text_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"the value {problem}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runql", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve GraphQL and GraphiQL")
    serve.add_argument("--host", help="address to listen on (default: RUNQL_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=_as_setting("port"), help="port (default: RUNQL_PORT or 8000)"
    )
    serve.add_argument(
        "--workers",
        type=_as_setting("serve_workers"),
        metavar="N",
        help="server processes sharing the port (default: RUNQL_SERVE_WORKERS, "
        "else one per core in production and 1 in development); each runs "
        "RUNQL_WORKERS runs at once",
    )
    serve.set_defaults(handler=_serve)
    worker = commands.add_parser("worker", help="execute runs (without serving the API)")
    worker.add_argument(
        "--concurrency", type=int, help="runs executed at once (default: RUNQL_WORKERS, else 1)"
    )
    worker.set_defaults(handler=_worker)
    keys = commands.add_parser("keys", help="manage API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="make a key and print its secret once")
    create.add_argument("--name", required=True, type=_text, help="what the key is for")
    create.add_argument(
        "--org", default="default", type=_text, help="its organization (made if new)"
    )
    key_actions.add_parser("list", help="list keys (never their secrets)")
    revoke = key_actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id", help="the key's id (key_…)")
    keys.set_defaults(handler=_keys_command)
    migrate = commands.add_parser("migrate", help="migrate the database to the latest revision")
    migrate.set_defaults(handler=_migrate)
    demo = commands.add_parser("demo", help="load demo data")
    demo.add_argument("--runs", type=int, default=200, help="how many runs (default 200)")
    demo.add_argument(
        "--if-empty", action="store_true", help="load only when the database holds no runs"
    )
    demo.set_defaults(handler=_demo)
    export = commands.add_parser("export-schema", help="print the schema in SDL")
    export.add_argument("--output", help="write to this file instead of standard output")
    export.set_defaults(handler=_export_schema)
    table = commands.add_parser(
        "settings-table", help="print the README's settings table, from runql/settings.py"
    )
    table.set_defaults(handler=_settings_table)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"runql: {error}", file=sys.stderr)
        return 2
    return int(args.handler(settings, args))
