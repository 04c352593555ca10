"""The garbage collector of a server process: settled once its start-up is done."""

import gc
from collections.abc import Iterator

import pytest

from runql.app import create_app
from runql.operations import collector
from runql.storage.database import Database
from tests.operations.helpers import lifespan, settings_for


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settle_freezes_what_is_alive_and_collects_the_young_less_often() -> None:
    _young, middle, old = gc.get_threshold()
    start_up = [[index] for index in range(100)]  # tracked: lists hold references

    collector.settle()

    tracked = {id(found) for found in gc.get_objects()}
    assert not any(id(made) in tracked for made in start_up)  # frozen: out of the collector's walk
    assert gc.get_freeze_count() >= len(start_up)
    assert gc.get_threshold() == (collector.YOUNG_EVERY, middle, old)
    made_after = [0]
    assert id(made_after) in {id(found) for found in gc.get_objects()}


@pytest.mark.usefixtures("restored_collector")
async def test_a_server_app_settles_its_collector_once_started(database: Database) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    served = create_app(settings_for(database), database, freeze_gc=True)
    embedded = create_app(settings_for(database), database)

    async with lifespan(embedded):
        assert gc.get_threshold()[0] == 700  # an app run by tests or another server: untouched
        assert gc.get_freeze_count() == 0
    async with lifespan(served):
        assert gc.get_threshold()[0] == collector.YOUNG_EVERY
        assert gc.get_freeze_count() > 0
