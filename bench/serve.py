"""Served-path benchmark: the real `runql serve` against a floor server, open-loop, per core.

For each database (SQLite file, fresh PostgreSQL database: `runql migrate`, `runql demo --runs
N`, ANALYZE, one API key), two servers take turns on core 0 (`taskset -c 0`), one at a time
while timed (both are up together only for the check of their answers):

- runql: `python -m runql serve` with production settings (RUNQL_ENV=production,
  RUNQL_WORKERS=0, the rate limit raised out of the way, GraphiQL off);
- floor: bench/floorserve.py, a raw ASGI app on the same uvicorn (same loop and HTTP parser)
  with an in-memory key table, the same rows through the raw driver, and orjson.

`--server granian` runs both on granian instead (bench/floorserve.py's `granian_command`:
`--interface asgi`, one worker, uvloop, HTTP/1.1): runql as granian serving its app factory
`runql.serving:process_app` with the same environment and runql's logging configuration (which
`runql serve` hands to uvicorn), the floor as `floorserve.py --server granian`. Granian's
worker is a child process of the one pinned (it inherits the core), so the server's CPU is
always the sum over its process tree, each process with all its threads.

Before any timing, each workload's answers from both servers are compared byte for byte over a
sample of its requests; a difference stops the benchmark. The load generator
(bench/openloop.py) runs on core 1, open loop: requests are due on a fixed schedule and their
latency counts from the due time. Per workload and server the rate starts at `--start` and
grows by `--factor` per step of `--seconds` until saturation (achieved rate under 95% of the
offered one, an error, or p99 over `--saturation-ms`); when the first step saturates, the rate
falls by the same factor instead until a step does not.

`--alternate` starts every server at once and times them in turns instead: at each rate each
server that has not saturated takes its step while the others are stopped (SIGSTOP, then
SIGCONT), so that the machine's speed, which moves from minute to minute on a shared machine,
moves under every server's steps alike rather than under one server's whole run; each server's
rates and peak are found as above.

Workloads: run-by-id (`query($id: ID!) { run(id: $id) { id status } }`, ids rotated over all
runs), feed20 / feed100 (queries/feed.graphql at first: 20 / 100), detail (createRun's
read-back: queries/run-detail.graphql, ids rotated); and, with `--only`, createRun itself (a
run of the echo agent; a write, so no floor and no ratio). `--standard` adds a third server:
runql on the standard executor only (RUNQL_FASTPATH=0), with its own ratios to the floor.
`--box` adds runql on the whole machine (`runql serve --workers N`, N the cores, not pinned,
its CPU summed over its processes; the load generator still runs on core 1), with its ratios
to the one-core floor ("box_ratio").

Figures per workload and server: peak rps (the highest achieved rate of a step that did not
saturate; `peak_found` false where no step saturated up to `--max-rate`: the peak is at least
that, the table shows it as ">=", and a ratio over it is a bound), the highest offered rate
with p99 <= `--p99-ms` (50), the server's CPU ms per request (utime + stime from
/proc/<pid>/stat over one step: the highest that held the p99 bound, else the peak's),
PostgreSQL's CPU ms per request over the same step (the backends of the benchmark's database,
from /proc; SQLite runs in the server's process: null), the median latency of requests sent one
at a time, and runql / floor ratios. The generator's own CPU per request gives its ceiling
(1000 / that, on its core).
/proc/loadavg is read before and after. The last line printed is JSON.

Usage: python bench/serve.py [--database sqlite|postgresql|both] [--runs 5000] [--quick]
       [--only run-by-id,feed20,feed100,detail,createRun] [--standard] [--seconds 4]
       [--start 20] [--factor 1.4] [--postgres postgresql://postgres@127.0.0.1:5432/test]
       [--server uvicorn|granian] [--alternate] [--max-rate 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.floorserve import (  # (runs as a script, too)
    FEED,
    RUN_BY_ID,
    RUN_DETAIL,
    SERVERS,
    granian_command,
)
from bench.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CORE, LOAD_CORE = "0", "1"
MIN_ACHIEVED = 0.95  # of the offered rate, for a step not to saturate
SAMPLE = 20  # requests per workload whose answers are compared byte for byte
READS = ("run-by-id", "feed20", "feed100", "detail")  # the floor answers these
WORKLOADS = (*READS, "createRun")
CREATE = (
    "mutation Create($agent: ID!) { createRun(input: {agentId: $agent, content: "
    '{text: "load test"}}) { run { id status } } }'
)
FLOOR = "floor"
BOX = "box"  # runql on every core: `runql serve --workers N`, not pinned (`--box`)
DATABASES = ("sqlite", "postgresql")


@dataclass
class Step:
    rate: float
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float
    database_cpu_ms: float | None
    generator_cpu_ms: float

    def saturated(self, saturation_ms: float) -> bool:
        return (
            self.errors > 0
            or self.p99_ms > saturation_ms
            or self.achieved_rate < MIN_ACHIEVED * self.rate
        )


@dataclass
class Measured:
    serial_p50_ms: float
    steps: list[Step] = field(default_factory=list)

    def figures(self, p99_ms: float, saturation_ms: float) -> dict[str, Any]:
        unsaturated = [step for step in self.steps if not step.saturated(saturation_ms)]
        held = [step for step in unsaturated if step.p99_ms <= p99_ms]
        peak = max(unsaturated, key=lambda step: step.achieved_rate, default=None)
        # CPU per request at the highest held rate (most requests, least idle overhead).
        basis = held[-1] if held else peak
        return {
            "peak_rps": peak.achieved_rate if peak else 0.0,
            # False: no step saturated, so `peak_rps` is the rates' cap (`--max-rate`), the
            # server's peak at least that, and a ratio over it a bound, not a figure
            "peak_found": len(unsaturated) < len(self.steps),
            "rate_p99_ok": held[-1].rate if held else 0.0,
            "server_cpu_ms": basis.server_cpu_ms if basis else None,
            "database_cpu_ms": basis.database_cpu_ms if basis else None,
            "serial_p50_ms": self.serial_p50_ms,
            "cpu_at_rate": basis.rate if basis else None,
        }


# --------------------------------------------------------------------------------------------
# /proc.
# --------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # gone
        return None


def _processes() -> dict[int, tuple[int, float]]:
    """Each process's parent and CPU seconds, by pid: utime + stime (fields 14 and 15 of
    /proc/<pid>/stat), which count every thread of the process."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
            )
    return table


def _tree(pid: int, table: dict[int, tuple[int, float]]) -> list[int]:
    """`pid` and every process under it (a server's workers, theirs), while they run."""
    children: dict[int, list[int]] = {}
    for child, (parent, _cpu) in table.items():
        children.setdefault(parent, []).append(child)
    found, pending = [], [pid] if pid in table else []
    while pending:
        found.append(pending.pop())
        pending.extend(children.get(found[-1], ()))
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU seconds of a process and of the processes under it (a server's workers, with
    all their threads); 0 once it is gone."""
    table = _processes()
    return sum(table[member][1] for member in _tree(pid, table))


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database`, by pid."""
    table = _processes()
    found: dict[int, float] = {}
    for pid, (_parent, cpu) in table.items():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"postgres: ") and f" {database} ".encode() in command:
            found[pid] = cpu
    return found


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


SPEED_PROBE = """
import time
start, total = time.process_time(), 0
for index in range(3_000_000):
    total += index
print(time.process_time() - start)
"""


def core_speed_ms(core: int | None) -> float:
    """The CPU time (ms) a fixed pure-Python loop takes on `core` (any core for None), in a
    process of its own: how fast this machine runs Python at the moment. On a shared machine it
    moves from minute to minute, and a server's CPU per request or per delta moves with it."""
    pin = [] if core is None else ["taskset", "-c", str(core)]
    found = subprocess.run(
        [*pin, sys.executable, "-c", SPEED_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return round(float(found) * 1000, 1)


# --------------------------------------------------------------------------------------------
# The database.
# --------------------------------------------------------------------------------------------


def runql_command(url: str, *arguments: str) -> str:
    environment = {**os.environ, "RUNQL_DATABASE_URL": url, "RUNQL_ENV": "production"}
    return runql_cli(environment, *arguments)


def runql_cli(environment: Mapping[str, str], *arguments: str) -> str:
    """What `runql ARGUMENTS` prints, run with `environment`."""
    return subprocess.run(
        [sys.executable, "-m", "runql", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout


async def _key_and_rows(url: str) -> tuple[str, str, list[str], str]:
    """An API key's secret and organization, every run id and an echo agent's id."""
    from sqlalchemy import text

    from runql.auth.keys import create_key
    from runql.storage.database import Database

    database = Database.from_url(url)
    try:
        key = await create_key(database, "serve-bench")
        async with database.engine.connect() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text("ANALYZE"))
                await conn.commit()
            ids = (await conn.execute(text("SELECT id FROM runs ORDER BY id"))).scalars().all()
            agent = (
                await conn.execute(
                    text("SELECT id FROM agents WHERE kind = 'echo' ORDER BY id LIMIT 1")
                )
            ).scalar_one()
        return key.secret, key.row.org_id, list(ids), agent
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Prepared:
    url: str
    name: str  # PostgreSQL's database name, for its backends' CPU; "" on SQLite
    key: str
    org: str
    run_ids: list[str]
    agent: str  # an echo agent, for createRun


def prepare(url: str, runs: int) -> Prepared:
    runql_command(url, "migrate")
    runql_command(url, "demo", "--runs", str(runs))
    key, org, run_ids, agent = asyncio.run(_key_and_rows(url))
    name = url.rsplit("/", 1)[1] if url.startswith("postgresql") else ""
    return Prepared(url, name, key, org, run_ids, agent)


def bodies(workload: str, prepared: Prepared) -> list[str]:
    """The request bodies of a workload, rotated over by the generator."""
    if workload == "createRun":
        return [orjson.dumps({"query": CREATE, "variables": {"agent": prepared.agent}}).decode()]
    if workload == "feed20":
        return [orjson.dumps({"query": FEED, "variables": {"first": 20}}).decode()]
    if workload == "feed100":
        return [orjson.dumps({"query": FEED, "variables": {"first": 100}}).decode()]
    query = RUN_BY_ID if workload == "run-by-id" else RUN_DETAIL
    return [
        orjson.dumps({"query": query, "variables": {"id": run_id}}).decode()
        for run_id in prepared.run_ids
    ]


# --------------------------------------------------------------------------------------------
# The servers.
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Software:
    """The ASGI server that runql and the floor run on (`--server`)."""

    name: str  # of SERVERS
    log_config: Path  # runql's logging as a file, for granian (`runql serve` sets uvicorn's)

    @classmethod
    def written(cls, name: str, folder: Path) -> Software:
        from runql.operations.logs import uvicorn_log_config
        from runql.settings import Settings

        # RUNQL_LOG_FORMAT and RUNQL_LOG_LEVEL as runql serve would read them here: the
        # servers inherit this environment
        log_config = folder / "runql-logging.json"
        log_config.write_bytes(orjson.dumps(uvicorn_log_config(Settings.from_env())))
        return cls(name, log_config)


def _command(
    server: str, prepared: Prepared, port: int, software: Software
) -> tuple[list[str], dict[str, str]]:
    if server == FLOOR:
        return (
            [
                sys.executable,
                str(ROOT / "bench" / "floorserve.py"),
                "--database-url",
                prepared.url,
                "--key",
                prepared.key,
                "--org",
                prepared.org,
                "--port",
                str(port),
                "--server",
                software.name,
            ],
            dict(os.environ),
        )
    processes = (os.cpu_count() or 1) if server == BOX else 1
    environment = {  # runql, or runql on the standard executor only
        **os.environ,
        "RUNQL_DATABASE_URL": prepared.url,
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": "0",
        "RUNQL_GRAPHIQL": "0",
        "RUNQL_SERVE_WORKERS": str(processes),
        "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
        "RUNQL_RATE_LIMIT_BURST": "1000000",
        "RUNQL_FASTPATH": "0" if server == "standard" else "1",
    }
    if software.name == "granian":
        return (
            granian_command(
                "runql.serving:process_app",
                port,
                "--log-config",
                str(software.log_config),
                "--log-level",
                "warning",
                workers=processes,
            ),
            environment,
        )
    return (
        [sys.executable, "-m", "runql", "serve", "--host", "127.0.0.1", "--port", str(port)],
        environment,
    )


@contextmanager
def serving(
    prepared: Prepared, software: Software, *servers: str
) -> Iterator[list[tuple[int, int]]]:
    """Servers pinned to core 0, started side by side: each one's port and process id. Their
    logs (runql's access lines included, at production's level) go to files, read only when a
    server fails to start."""
    processes: list[tuple[int, subprocess.Popen[bytes], IO[bytes]]] = []
    with ExitStack() as logs:
        try:
            for server in servers:
                port = free_port()
                command, environment = _command(server, prepared, port, software)
                written: IO[bytes] = logs.enter_context(tempfile.TemporaryFile())
                pinned = [] if server == BOX else ["taskset", "-c", SERVER_CORE]
                processes.append(
                    (
                        port,
                        subprocess.Popen(
                            [*pinned, *command],
                            env=environment,
                            cwd=ROOT,
                            stdout=subprocess.DEVNULL,
                            stderr=written,
                        ),
                        written,
                    )
                )
            for port, process, server_log in processes:
                wait_until_up(port, process, server_log)
            yield [(port, process.pid) for port, process, _log in processes]  # taskset execs
        finally:
            for _port, process, _log in processes:
                process.send_signal(signal.SIGTERM)
            for _port, process, _log in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:  # its workers too, not left behind
                    for member in reversed(_tree(process.pid, _processes())):
                        with suppress(ProcessLookupError):
                            os.kill(member, signal.SIGKILL)
                    process.wait()


def wait_until_up(port: int, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            stderr = log.read().decode(errors="replace")
            raise RuntimeError(f"the server exited at start-up: {stderr[-2000:]}")
        try:
            httpx.post(f"http://127.0.0.1:{port}/graphql", json={}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start within 60 s")


def answers(port: int, key: str, sample: list[str]) -> list[bytes]:
    with httpx.Client(
        timeout=60, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ) as client:
        found = []
        for body in sample:
            response = client.post(f"http://127.0.0.1:{port}/graphql", content=body)
            if response.status_code != 200 or "errors" in orjson.loads(response.content):
                raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
            found.append(response.content)
        return found


def request_sample(requests: list[str]) -> list[str]:
    """Up to SAMPLE of a workload's requests, spread over them: the ones whose answers are
    checked before timing."""
    step = max(1, len(requests) // SAMPLE)
    return requests[::step][:SAMPLE]


def first_difference(left: bytes, right: bytes) -> str:
    index = next(
        (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
        min(len(left), len(right)),
    )
    return (
        f"at byte {index}: runql …{left[max(0, index - 80) : index + 80]!r}… floor "
        f"…{right[max(0, index - 80) : index + 80]!r}…"
    )


# --------------------------------------------------------------------------------------------
# Load.
# --------------------------------------------------------------------------------------------


def generate(port: int, key: str, path: Path, *arguments: str) -> dict[str, Any]:
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        sys.executable,
        str(ROOT / "bench" / "openloop.py"),
        "--port",
        str(port),
        "--key",
        key,
        "--bodies",
        str(path),
        *arguments,
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if finished.returncode != 0:
        raise RuntimeError(f"the load generator failed: {finished.stderr[-3000:]}")
    report: dict[str, Any] = orjson.loads(finished.stdout.strip().splitlines()[-1])
    return report


def step(port: int, pid: int, prepared: Prepared, path: Path, rate: float, seconds: float) -> Step:
    backends = postgres_backends(prepared.name) if prepared.name else {}
    cpu = cpu_seconds(pid)
    report = generate(port, prepared.key, path, "--rate", f"{rate:g}", "--seconds", f"{seconds:g}")
    server_cpu = cpu_seconds(pid) - cpu
    answered = max(1, int(report["answered"]))
    database_cpu: float | None = None
    if prepared.name:
        after = postgres_backends(prepared.name)
        database_cpu = sum(value - backends.get(pid_, 0.0) for pid_, value in after.items())
        database_cpu = round(database_cpu * 1000 / answered, 3)
    return Step(
        rate=rate,
        achieved_rate=report["achieved_rate"] or 0.0,
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        errors=report["errors"],
        server_cpu_ms=round(server_cpu * 1000 / answered, 3),
        database_cpu_ms=database_cpu,
        generator_cpu_ms=report["cpu_ms_per_request"],
    )


def rates(args: argparse.Namespace, measured: Measured) -> Iterator[float]:
    """Up from `--start` by `--factor`; if the first step already saturates, down from it by
    the same factor (to 1/s at least) until one does not, so that every server has a peak."""
    rate = args.start
    while rate <= args.max_rate:
        yield float(round(rate, 1))
        if measured.steps[-1].saturated(args.saturation_ms):
            break
        rate *= args.factor
    if len(measured.steps) > 1 or not measured.steps[-1].saturated(args.saturation_ms):
        return
    rate = args.start / args.factor
    while rate >= 1:
        yield float(round(rate, 1))
        if not measured.steps[-1].saturated(args.saturation_ms):
            return
        rate /= args.factor


def _idle(pid: int, seconds: float = 30) -> None:
    """Wait until the server idles (under 10% of a core over 0.3 s) after an overload."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - before < 0.03:
            return


def _serial(port: int, prepared: Prepared, path: Path, args: argparse.Namespace) -> Measured:
    """Warmed up, and with the median of requests sent one at a time."""
    generate(port, prepared.key, path, "--serial", str(args.warmup))
    serial = generate(port, prepared.key, path, "--serial", str(args.serial))
    return Measured(serial_p50_ms=serial["p50_ms"])


def _timed(
    port: int,
    pid: int,
    prepared: Prepared,
    path: Path,
    rate: float,
    label: str,
    args: argparse.Namespace,
) -> Step:
    """One step, printed; then the server is left to idle."""
    found = step(port, pid, prepared, path, rate, args.seconds)
    saturated = found.saturated(args.saturation_ms)
    print(
        f"  {label:<22} {rate:>7g}/s: got {found.achieved_rate:>7.1f}/s, p50 "
        f"{found.p50_ms:>8.2f} ms, p99 {found.p99_ms:>8.2f} ms, server "
        f"{found.server_cpu_ms:>7.3f} ms/req, db {found.database_cpu_ms or 0:>6.3f} "
        f"ms/req, errors {found.errors}{'  <- saturated' if saturated else ''}",
        flush=True,
    )
    _idle(pid)
    return found


def measure(
    port: int, pid: int, prepared: Prepared, path: Path, label: str, args: argparse.Namespace
) -> Measured:
    measured = _serial(port, prepared, path, args)
    for rate in rates(args, measured):
        measured.steps.append(_timed(port, pid, prepared, path, rate, label, args))
    return measured


@contextmanager
def stopped(pids: Sequence[int]) -> Iterator[None]:
    """The servers of `pids` (each with the processes under it) stopped by SIGSTOP, then
    continued: while one server is timed, the others take no turn on the core."""
    members = [member for pid in pids for member in _tree(pid, _processes())]
    for member in members:
        with suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)
    try:
        yield
    finally:
        for member in members:
            with suppress(ProcessLookupError):
                os.kill(member, signal.SIGCONT)


def measure_alternating(
    up: Mapping[str, tuple[int, int]],
    prepared: Prepared,
    path: Path,
    label: str,
    args: argparse.Namespace,
) -> dict[str, Measured]:
    """Every server of `up` (name: port, pid) at the same rates, taking turns step by step (the
    others stopped meanwhile), each until it saturates: a change of the machine's speed
    during the run then reaches every server's steps alike, not one server's whole run."""
    measured: dict[str, Measured] = {}
    for server, (port, _pid) in up.items():
        with stopped([other for name, (_, other) in up.items() if name != server]):
            measured[server] = _serial(port, prepared, path, args)
    pending = {server: rates(args, measured[server]) for server in up}
    while pending:
        for server, sequence in list(pending.items()):
            rate = next(sequence, None)
            if rate is None:
                del pending[server]
                continue
            port, pid = up[server]
            with stopped([other for name, (_, other) in up.items() if name != server]):
                found = _timed(port, pid, prepared, path, rate, f"{label} {server}", args)
            measured[server].steps.append(found)
    return measured


# --------------------------------------------------------------------------------------------
# One database, both servers.
# --------------------------------------------------------------------------------------------


def bench_database(
    kind: str, args: argparse.Namespace, folder: Path, software: Software
) -> dict[str, Any]:
    server_url = args.postgres if kind == "postgresql" else None
    with scratch_database(server_url, str(folder)) as url:
        started = time.monotonic()
        prepared = prepare(url, args.runs)
        print(
            f"{kind}: {len(prepared.run_ids)} runs ready in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        paths: dict[str, Path] = {}
        for workload in args.only:
            paths[workload] = folder / f"{kind}-{workload}.json"
            paths[workload].write_bytes(orjson.dumps(bodies(workload, prepared)))
        with serving(prepared, software, *args.servers) as up:
            identical = check_identity(
                prepared, args.only, args.servers, [port for port, _pid in up]
            )
        measured: dict[str, dict[str, Measured]] = {workload: {} for workload in args.only}
        if args.alternate:  # all up, taking turns at each rate
            with serving(prepared, software, *args.servers) as up:
                by_name = dict(zip(args.servers, up, strict=True))
                for workload in args.only:
                    servers = {
                        name: where
                        for name, where in by_name.items()
                        if name != FLOOR or workload in READS
                    }
                    measured[workload] = measure_alternating(
                        servers, prepared, paths[workload], f"{kind} {workload}", args
                    )
        else:
            for server in args.servers:  # one at a time on the core
                with serving(prepared, software, server) as [(port, pid)]:
                    for workload in args.only:
                        if server == FLOOR and workload not in READS:
                            continue
                        measured[workload][server] = measure(
                            port,
                            pid,
                            prepared,
                            paths[workload],
                            f"{kind} {server} {workload}",
                            args,
                        )
    return {
        "identical_bodies": identical,
        "workloads": {
            workload: _compare(by_server, args) for workload, by_server in measured.items()
        },
    }


def check_identity(
    prepared: Prepared, workloads: Sequence[str], servers: Sequence[str], ports: list[int]
) -> dict[str, int]:
    """Each read workload's sample answered by every server (at `ports`), each runql's answer
    byte for byte the floor's: how many answers were compared per workload."""
    samples = {
        workload: request_sample(bodies(workload, prepared))
        for workload in workloads
        if workload in READS
    }
    found = {
        server: {
            workload: answers(port, prepared.key, sample) for workload, sample in samples.items()
        }
        for server, port in zip(servers, ports, strict=True)
    }
    for server in servers:
        for workload in samples:
            for ours, floors in zip(found[server][workload], found[FLOOR][workload], strict=True):
                if ours != floors:
                    sys.exit(
                        f"serve.py: {workload}: the floor's answer differs from {server}'s,"
                        " so the comparison would be meaningless; "
                        f"{first_difference(ours, floors)}"
                    )
    return {workload: len(sample) for workload, sample in samples.items()}


def _compare(by_server: dict[str, Measured], args: argparse.Namespace) -> dict[str, Any]:
    """Each server's figures, and each runql's over the floor's ("ratio" for runql,
    "standard_ratio" for the standard executor) when the floor answers the workload."""
    figures: dict[str, Any] = {
        server: measured.figures(args.p99_ms, args.saturation_ms)
        for server, measured in by_server.items()
    }
    floor = figures.get(FLOOR)

    def ratio(ours: dict[str, Any], key: str) -> float | None:
        if floor is None or not ours[key] or not floor[key]:
            return None
        return round(float(ours[key]) / float(floor[key]), 3)

    ratios = {
        f"{'' if server == 'runql' else server + '_'}ratio": {
            key: ratio(figures[server], key) for key in RATIO_KEYS
        }
        for server in by_server
        if server != FLOOR and floor is not None
    }
    generator = [
        step.generator_cpu_ms
        for measured in by_server.values()
        for step in measured.steps
        if step.generator_cpu_ms > 0
    ]
    return {
        **figures,
        **ratios,
        "generator_ceiling_rps": round(1000 / min(generator)) if generator else None,
        "steps": {
            server: [vars(step) for step in measured.steps]
            for server, measured in by_server.items()
        },
    }


RATIO_KEYS = ("peak_rps", "rate_p99_ok", "server_cpu_ms", "database_cpu_ms", "serial_p50_ms")


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{'database':<10} {'workload':<10} {'server':<14} {'peak rps':>9} {'p99ok rps':>9} "
        f"{'srv ms/req':>10} {'db ms/req':>9} {'serial ms':>9}"
    )
    for kind, found in results.items():
        for workload, figures in found["workloads"].items():
            for server, row in figures.items():
                if not isinstance(row, dict) or server == "steps":
                    continue
                cells = [row.get(key) for key in RATIO_KEYS]
                text = [
                    f"{cell:>9.3g}" if isinstance(cell, float | int) else f"{'-':>9}"
                    for cell in cells
                ]
                if row.get("peak_found") is False:  # never saturated: at least this
                    text[0] = f"{'>=' + format(cells[0], '.3g'):>9}"
                print(
                    f"{kind:<10} {workload:<10} {server:<14} {text[0]} {text[1]} "
                    f"{text[2]:>10} {text[3]} {text[4]}"
                )


def run(args: argparse.Namespace) -> dict[str, Any]:
    before = loadavg()
    results: dict[str, Any] = {}
    server = {"name": args.server, "version": version(args.server)}
    print(f"server: {args.server} {server['version']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="runql-serve-") as folder:
        software = Software.written(args.server, Path(folder))
        for kind in args.database:
            results[kind] = bench_database(kind, args, Path(folder), software)
    print_table(results)
    return {
        "server": server,
        "databases": results,
        "runs": args.runs,
        "seconds_per_step": args.seconds,
        "p99_limit_ms": args.p99_ms,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "cores": os.cpu_count(),
    }


def _names(allowed: Sequence[str]) -> Any:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if value == "both":
            return list(allowed)
        unknown = sorted(set(names) - set(allowed))
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--database",
        type=_names(DATABASES),
        default=list(DATABASES),
        help="sqlite, postgresql or both (default both)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL server (a new database is made and dropped)",
    )
    parser.add_argument("--runs", type=int, default=5000, help="demo runs (default 5000)")
    parser.add_argument(
        "--only",
        type=_names(WORKLOADS),
        default=list(READS),
        help=f"workloads, comma-separated, of {','.join(WORKLOADS)} "
        f"(default {','.join(READS)}; createRun has no floor)",
    )
    parser.add_argument(
        "--box",
        action="store_true",
        help="also time runql on every core (runql serve --workers N, not "
        "pinned; the load generator keeps core 1): the whole box's peak",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="uvicorn",
        help="the ASGI server runql and the floor both run on (default "
        "uvicorn, as `runql serve`; granian: the app factory on granian)",
    )
    parser.add_argument(
        "--standard",
        action="store_true",
        help="also time runql on the standard executor (RUNQL_FASTPATH=0)",
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="start every server at once and time them in turns at each rate (the others "
        "stopped by SIGSTOP meanwhile), rather than each one's whole run after the other's",
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per step (default 4)")
    parser.add_argument("--start", type=float, default=20.0, help="first rate (default 20)")
    parser.add_argument(
        "--factor", type=float, default=1.4, help="each rate over the last (default 1.4)"
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=40000.0,
        help="the highest rate offered (default 40000); a server that never saturates below "
        "it is reported with peak_found false",
    )
    parser.add_argument(
        "--p99-ms", type=float, default=50.0, help="the latency bound of `rate_p99_ok` (default 50)"
    )
    parser.add_argument(
        "--saturation-ms",
        type=float,
        default=500.0,
        help="a step with a p99 over this saturates (default 500)",
    )
    parser.add_argument(
        "--serial",
        type=int,
        default=200,
        help="requests sent one at a time for the median (default 200)",
    )
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 100 runs, one short step at --start"
    )
    args = parser.parse_args(argv)
    args.servers = [
        "runql",
        *(["standard"] if args.standard else []),
        *([BOX] if args.box else []),
        FLOOR,
    ]
    if args.quick:
        args.runs, args.seconds, args.serial, args.warmup = 100, 0.5, 5, 3
        args.max_rate = args.start
    if args.factor <= 1 or args.start <= 0 or args.seconds <= 0:
        parser.error("--factor must exceed 1; --start and --seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    report = run(parse_args(argv))
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
