"""Diagnostic: two processes writing one SQLite file through `Database.write`, each with a busy
event loop, as a gateway answering creates and a worker with runs in flight are.

Each process runs `--transactions` write transactions of four statements (a read, an update,
an insert, a read of several rows) while `--busy` tasks each spend about 0.1 ms of CPU every
10 ms on its loop. A statement's trip to aiosqlite's thread resumes behind whatever the loop
has ready, and the file stays locked meanwhile: the fewer trips a transaction takes, the
sooner the other process may write. Prints each process's transactions per second and the
mean time from its first statement to its commit (which includes any wait in SQLite's busy
handler), then one JSON line with the sum of both rates. In-process figures: a diagnostic of
the storage layer, not of the served path.

Usage: python bench/sqlite_writers.py [--transactions 300] [--busy 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from runql.storage.database import Database

KEYS = 50


async def _write(url: str, transactions: int, busy: int) -> dict[str, float]:
    database = Database.from_url(url)
    stopping = asyncio.Event()

    async def spin() -> None:
        while not stopping.is_set():
            sum(range(3000))  # about 0.1 ms of CPU
            await asyncio.sleep(0.01)

    spinners = [asyncio.create_task(spin()) for _ in range(busy)]
    held = 0.0
    started = time.perf_counter()
    for index in range(transactions):
        key = {"k": index % KEYS}
        async with database.write() as session:
            first = time.perf_counter()
            await session.execute(text("SELECT count(*) FROM t WHERE k = :k"), key)
            await session.execute(text("UPDATE t SET v = v + 1 WHERE k = :k"), key)
            await session.execute(text("INSERT INTO log (k) VALUES (:k)"), key)
            (await session.execute(text("SELECT k, v FROM t WHERE k < 5"))).all()
        held += time.perf_counter() - first
    seconds = time.perf_counter() - started
    stopping.set()
    await asyncio.gather(*spinners)
    await database.dispose()
    return {"per_s": transactions / seconds, "hold_ms": held * 1000 / transactions}


def _prepared(folder: str) -> str:
    path = f"{folder}/writers.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)")
    connection.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, k INTEGER)")
    connection.executemany("INSERT INTO t VALUES (?, 0)", [(k,) for k in range(KEYS)])
    connection.commit()
    connection.close()
    return f"sqlite+aiosqlite:///{path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--busy", type=int, default=50)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = asyncio.run(_write(args.child, args.transactions, args.busy))
        print(orjson.dumps(figures).decode(), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        url = _prepared(folder)
        command = [sys.executable, __file__, "--child", url]
        command += ["--transactions", str(args.transactions), "--busy", str(args.busy)]
        children = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(2)]
        results = [orjson.loads(child.communicate()[0].splitlines()[-1]) for child in children]
    for number, figures in enumerate(results, 1):
        print(
            f"process {number}: {figures['per_s']:.0f} transactions/s, "
            f"{figures['hold_ms']:.1f} ms from first statement to commit"
        )
    total = round(sum(figures["per_s"] for figures in results), 1)
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    print(orjson.dumps({"transactions_per_s": total, "loadavg": loadavg}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
