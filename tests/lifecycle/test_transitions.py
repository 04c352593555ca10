"""The state machine: every legal and illegal transition, and concurrent ones on one run."""

import asyncio
import itertools

import pytest

from runql.enums import RunStatus
from runql.errors import Conflict, NotFound
from runql.lifecycle.transitions import SOURCES, transition
from runql.storage.database import Database
from runql.storage.tables import AgentRow, RunRow
from tests.lifecycle.conftest import event_log, new_run, reload, statuses

PATHS = {
    RunStatus.PENDING: [],
    RunStatus.RUNNING: [RunStatus.RUNNING],
    RunStatus.SUCCESS: [RunStatus.RUNNING, RunStatus.SUCCESS],
    RunStatus.ERROR: [RunStatus.RUNNING, RunStatus.ERROR],
    RunStatus.CANCELLED: [RunStatus.CANCELLED],
}
LEGAL = {(source, target) for target, sources in SOURCES.items() for source in sources}
ALL_PAIRS = list(itertools.product(RunStatus, RunStatus))


async def _run_in(database: Database, agent: AgentRow, status: RunStatus) -> RunRow:
    run = await new_run(database, agent)
    for step in PATHS[status]:
        async with database.write() as session:
            run = await transition(session, run.id, step)
    return run


def test_the_table_is_the_documented_machine() -> None:
    assert {
        (RunStatus.PENDING, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.SUCCESS),
        (RunStatus.RUNNING, RunStatus.ERROR),
        (RunStatus.PENDING, RunStatus.CANCELLED),
        (RunStatus.RUNNING, RunStatus.CANCELLED),
    } == LEGAL


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL))
async def test_legal_transition_changes_status_and_logs_it(
    database: Database, echo: AgentRow, source: RunStatus, target: RunStatus
) -> None:
    run = await _run_in(database, echo, source)
    async with database.write() as session:
        moved = await transition(session, run.id, target)
    assert moved.status == target
    stored = await reload(database, run.id)
    assert stored.status == target
    assert (await statuses(database, run.id))[-1] == target.value
    if target is RunStatus.RUNNING:
        assert stored.started_at is not None
    if target.is_terminal:
        assert stored.completed_at is not None
        assert stored.completed_at >= stored.created_at


@pytest.mark.parametrize(
    ("source", "target"),
    [pair for pair in ALL_PAIRS if pair not in LEGAL and pair[1] is not RunStatus.PENDING],
)
async def test_illegal_transition_is_a_conflict_and_changes_nothing(
    database: Database, echo: AgentRow, source: RunStatus, target: RunStatus
) -> None:
    run = await _run_in(database, echo, source)
    before = await event_log(database, run.id)
    with pytest.raises(Conflict):
        async with database.write() as session:
            await transition(session, run.id, target)
    assert (await reload(database, run.id)).status == source
    assert await event_log(database, run.id) == before


async def test_a_missing_run_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound):
        async with database.write() as session:
            await transition(session, "run_AAAAAAAAAAAAAAAAAAAA", RunStatus.RUNNING)


async def test_sequence_numbers_have_no_gaps(database: Database, echo: AgentRow) -> None:
    run = await _run_in(database, echo, RunStatus.SUCCESS)
    log = await event_log(database, run.id)
    assert [seq for seq, _, _ in log] == [1, 2, 3]
    assert (await reload(database, run.id)).last_event_seq == 3


async def test_concurrent_transitions_on_one_run_let_exactly_one_win(
    database: Database, echo: AgentRow
) -> None:
    run = await _run_in(database, echo, RunStatus.RUNNING)
    targets = [RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED] * 6

    async def attempt(target: RunStatus) -> RunStatus | None:
        try:
            async with database.write() as session:
                await transition(session, run.id, target)
        except Conflict:
            return None
        return target

    winners = [w for w in await asyncio.gather(*(attempt(t) for t in targets)) if w]
    assert len(winners) == 1
    assert (await reload(database, run.id)).status == winners[0]
    assert await statuses(database, run.id) == ["pending", "running", winners[0].value]
    assert [seq for seq, _, _ in await event_log(database, run.id)] == [1, 2, 3]


async def test_events_are_announced_after_commit_and_never_after_rollback(
    database: Database, echo: AgentRow
) -> None:
    heard: list[tuple[str, int]] = []
    database.on_commit(lambda event: heard.append((event.run_id, event.seq)))
    run = await new_run(database, echo)
    assert heard == [(run.id, 1)]

    async def give_up() -> None:
        async with database.write() as session:
            await transition(session, run.id, RunStatus.RUNNING)
            raise RuntimeError("the caller gives up")

    with pytest.raises(RuntimeError):
        await give_up()
    assert heard == [(run.id, 1)]
    assert (await reload(database, run.id)).status == RunStatus.PENDING
