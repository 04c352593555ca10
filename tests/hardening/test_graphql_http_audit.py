"""npm graphql-http's GraphQL-over-HTTP audit (tests/audits/) against a real runql server."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.hardening.server import ROOT, running_server

AUDIT = ROOT / "tests" / "audits" / "graphql-http-audit.mjs"
# These four send `query Type($name: String!) { __type(name: $name) { name } }` to check the
# `variables` parameter: with introspection off (production's default) `__type` is refused.
NEED_INTROSPECTION = {"2EA1", "28B9", "D6D5", "6A70"}


def _audit(folder: Path, **settings: str) -> tuple[list[dict[str, Any]], int]:
    node = shutil.which("node")
    assert node is not None, "node is needed: the audit is npm graphql-http's"
    with running_server(folder, demo_runs=0, **settings) as server:
        audit = subprocess.run(
            [node, str(AUDIT)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "RUNQL_AUDIT_URL": server.url, "RUNQL_AUDIT_KEY": server.key},
        )
    assert audit.stdout, audit.stderr
    results: list[dict[str, Any]] = json.loads(audit.stdout)
    assert len(results) == 61  # graphql-http 1.23.1's serverAudits
    return results, audit.returncode


def _not_ok(results: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['id']} {r['status']}: {r['name']}: {r['reason']}"
        for r in results
        if r["status"] != "ok"
    ]


def test_the_graphql_over_http_audit_passes_every_check(tmp_path: Path) -> None:
    """Production settings, with introspection on for the four audits that need it."""
    results, returncode = _audit(tmp_path, INTROSPECTION="true")

    assert _not_ok(results) == []
    assert returncode == 0


def test_with_production_defaults_only_the_audits_that_introspect_fail(tmp_path: Path) -> None:
    results, _ = _audit(tmp_path)

    assert {r["id"] for r in results if r["status"] != "ok"} == NEED_INTROSPECTION
