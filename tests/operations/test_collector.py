"""The garbage collector of a server process: settled once its start-up is done. settle() runs
in an interpreter of its own here: the test process's collector is left as it is (a collection
forced in it would run other tests' leftover finalizers inside this one)."""

import json
import subprocess
import sys

import pytest

from runql.app import create_app
from runql.operations import collector
from runql.storage.database import Database
from tests.operations.helpers import lifespan, settings_for

SETTLE = """
import gc, json
from runql.operations import collector
before = gc.get_threshold()
start_up = [[index] for index in range(100)]  # tracked: lists hold references
collector.settle()
tracked = {id(found) for found in gc.get_objects()}
made_after = [0]
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "start_up_tracked": any(id(made) in tracked for made in start_up),
    "later_tracked": id(made_after) in {id(found) for found in gc.get_objects()},
}))
"""


def test_settle_freezes_what_is_alive_and_collects_the_young_less_often() -> None:
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", SETTLE], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    _young, middle, old = found["before"]
    assert found["after"] == [collector.YOUNG_EVERY, middle, old]
    assert found["frozen"] >= 100
    assert not found["start_up_tracked"]  # frozen: out of the collector's walk
    assert found["later_tracked"]


async def test_a_server_app_settles_its_collector_once_started(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled: list[str] = []
    monkeypatch.setattr(collector, "settle", lambda: settled.append("settled"))
    served = create_app(settings_for(database), database, freeze_gc=True)
    embedded = create_app(settings_for(database), database)

    async with lifespan(embedded):
        assert settled == []  # an app run by tests or another server: untouched
    async with lifespan(served):
        assert settled == ["settled"]
