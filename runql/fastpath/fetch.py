"""Running a plan's statements, level by level, each relation once per level for all its rows.
A to-one relation under a field is read in that field's statement (plan.Folded), so it runs
none of its own.

A field waiting to fetch is a need: the field and its parent rows. Needs of one group (the same
relation, the same arguments) share one statement. A group waits while another need could
still add keys to it from below (an actor is read once, for the messages and the attached
items alike), unless nothing else is ready (a cycle such as MessageGroup.parent): so the
statements a query runs are fixed by its shape, not by its data.
"""

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from runql.fastpath.execution import Execution, Row
from runql.fastpath.plan import Fetching, Folded, ObjectPlan, OperationPlan, distinct_folds

ROOT: Sequence[Row] = (None,)


@dataclass(frozen=True, slots=True, eq=False)
class Need:
    field: Fetching
    rows: Sequence[Row]


def _needs(plan: ObjectPlan, rows: Sequence[Row]) -> list[Need]:
    return [Need(field, rows) for field in plan.fetching] if rows else []


def _ready(pending: list[Need]) -> tuple[list[Need], list[Need]]:
    """The needs no other need could add keys to, and the rest."""
    ready = [
        need
        for need in pending
        if not any(
            need.field.signature in other.field.below
            and other.field.signature != need.field.signature
            for other in pending
        )
    ]
    if not ready:  # a cycle: fetch everything pending now
        return pending, []
    chosen = {id(need) for need in ready}
    return ready, [need for need in pending if id(need) not in chosen]


def _folds(execution: Execution, needs: list[Need]) -> tuple[Folded, ...]:
    """What the group's statement reads too: the folds of all its fields, each join once.
    None on PostgreSQL: it plans every statement for its parameters (force_custom_plan), and a
    join costs more to plan than the statement of its own the folded field runs instead (the
    feed's runs page with its three joins: about 0.95 ms of PostgreSQL backend CPU at 5,000
    runs, against 0.33 ms for the page, its agents and its message groups read apart)."""
    if execution.reads.postgres:
        return ()
    if len(needs) == 1:
        return needs[0].field.folds
    return distinct_folds(folded for need in needs for folded in need.field.folds)


async def _fetch_group(execution: Execution, needs: list[Need]) -> list[Need]:
    if len(needs) == 1:  # (a field's keys are distinct: Fetching.keys)
        keys = needs[0].field.keys(execution, needs[0].rows)
    else:
        keys = list(
            dict.fromkeys([key for need in needs for key in need.field.keys(execution, need.rows)])
        )
    if keys:
        await needs[0].field.load(execution, keys, _folds(execution, needs))
    found: list[Need] = []
    for need in needs:
        for plan, rows in need.field.children(execution, need.rows):
            found.extend(_needs(plan, rows))
    return found


async def fetch(execution: Execution, operation: OperationPlan) -> None:
    pending = [Need(field, ROOT) for field in operation.fetching]
    while pending:
        if len(pending) == 1:  # one field (a root object by id): its own group, at once
            need = pending.pop()
            if need.field.group(execution) is not None:
                pending = await _fetch_group(execution, [need])
            continue
        ready, pending = _ready(pending)
        groups: defaultdict[Hashable, list[Need]] = defaultdict(list)
        for need in ready:
            group = need.field.group(execution)
            if group is not None:  # arguments the resolver refuses: the field fails, no fetch
                groups[group].append(need)
        for needs in groups.values():
            pending.extend(await _fetch_group(execution, needs))
