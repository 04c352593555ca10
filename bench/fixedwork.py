"""A diagnostic of the served path: bench/serve.py with runql's read replaced by a constant.

runql's wire (runql/wire.py) still does all the rest of a planned POST's work: the headers, the
key and its rate limit, the body cap, the strict JSON parse, the document cache and the
variables, the request id, the response's headers, the request's metrics and the access line;
only the fast lane's run (`FastLane.run`: the read, the build and the operation's metrics) gives
a fixed body, about a run by id's length, instead. The floor (bench/floorserve.py) runs
unchanged. runql's peak over the floor's then bounds what any read, however cheap, could bring a
run by id to: the rest of the request costs that much already.

The servers that bench/serve.py starts load `sitecustomize` from a folder this script writes
and puts first on PYTHONPATH; it installs the constant read in runql's processes only (those
given RUNQL_DATABASE_URL). Before any timing, runql's answers (once its document is planned: the
view answers a document's first request) are checked to be the constant and the floor's to be
reads (serve.py's check of identical answers cannot hold here); the report is serve.py's, with
"constant_answers" (how many were checked) for its "identical_bodies".

Usage: python bench/fixedwork.py --only run-by-id [bench/serve.py's other arguments]
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a script: the repository's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serve

SWITCH = "RUNQL_BENCH_CONSTANT_READ"
# A run by id's answer, about as long as a real one (ids are 24 characters).
BODY = b'{"data":{"run":{"id":"run_00000000000000000000","status":"COMPLETED"}}}'

_SITE = f"""\
import os

if os.environ.get({SWITCH!r}) == "1" and "RUNQL_DATABASE_URL" in os.environ:
    from bench.fixedwork import install

    install()
"""


def install() -> None:
    """In a runql process: the fast lane's read answers BODY, with no build and no operation
    metrics (the wire's admission, plan, rate limit, request id, response headers, request
    metrics and access line as before)."""
    from runql.fastpath.lane import FastLane, Planned

    def constant(lane: FastLane, planned: Planned, org_id: str) -> bytes:
        return BODY

    FastLane.run = constant  # type: ignore[method-assign,assignment]


def check_constant(
    prepared: serve.Prepared, workloads: Sequence[str], servers: Sequence[str], ports: list[int]
) -> dict[str, int]:
    """runql answers BODY and the floor reads: how many answers were looked at per workload."""
    found: dict[str, int] = {}
    for workload in workloads:
        sample = serve.request_sample(serve.bodies(workload, prepared))
        for server, port in zip(servers, ports, strict=True):
            if server != serve.FLOOR:  # its document planned, the wire answers
                serve.answers(port, prepared.key, sample)
            answered = serve.answers(port, prepared.key, sample)
            constant = [answer == BODY for answer in answered]
            if any(constant) if server == serve.FLOOR else not all(constant):
                sys.exit(f"fixedwork.py: {server} did not answer as this diagnostic needs")
        found[workload] = len(sample)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    args = serve.parse_args(argv)
    if args.only != ["run-by-id"]:  # BODY answers a run by id
        sys.exit("fixedwork.py: give --only run-by-id")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "sitecustomize.py").write_text(_SITE)
        paths = [folder, str(serve.ROOT), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        os.environ[SWITCH] = "1"
        serve.check_identity = check_constant
        report = serve.run(args)
    for database in report["databases"].values():
        database["constant_answers"] = database.pop("identical_bodies")
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
