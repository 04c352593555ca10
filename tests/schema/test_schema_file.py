"""schema.graphql at the root is exactly what the code exports."""

import subprocess
import sys
from pathlib import Path

from runql.schema.schema import schema_sdl

ROOT = Path(__file__).resolve().parents[2]


def test_schema_file_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema_sdl(), (
        "schema.graphql is stale: run `python -m runql export-schema --output schema.graphql`"
    )


def test_export_schema_command_writes_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    subprocess.run(
        [sys.executable, "-m", "runql", "export-schema", "--output", str(target)],
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert target.read_text() == schema_sdl()


def test_every_spec_object_is_a_type() -> None:
    sdl = schema_sdl()
    for name in (
        "Run",
        "Cost",
        "MessageGroup",
        "Message",
        "Actor",
        "MessageContent",
        "ContentPart",
        "Attachment",
        "MessageError",
        "RunError",
        "AttachedItem",
        "Thread",
        "Agent",
    ):
        assert f"type {name} " in sdl, name
    for scalar in ("scalar DateTime", "scalar JSON"):
        assert scalar in sdl
