"""Everything a page of Run documents shows, read in a fixed number of statements.

Whatever the number of runs, `load_graph` runs seven statements (none for no runs): the
message groups the runs wrote, their messages with actors and contents, the contents' parts
and attachments, the runs' errors, and the items attached to the runs and to the groups.
Each follows a relation of the run graph (runql.storage.graph), reading beside the children
what its `read_with` names, as the standard executor's loaders do.
They run in the caller's session, so a page and what hangs below it come from one snapshot.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from runql.storage import reads
from runql.storage.graph import OBJECTS, ToMany, read_with
from runql.storage.tables import (
    ActorRow,
    AttachedItemRow,
    AttachmentRow,
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunErrorRow,
    RunRow,
)

MessageWithParts = tuple[MessageRow, ActorRow, MessageContentRow | None]
ItemWithActor = tuple[AttachedItemRow, ActorRow | None]


@dataclass
class RunGraph:
    """What hangs below some runs, by the id of the parent of each list."""

    groups: dict[str, MessageGroupRow] = field(default_factory=dict)
    messages: dict[str, list[MessageWithParts]] = field(default_factory=dict)
    parts: dict[str, list[ContentPartRow]] = field(default_factory=dict)
    attachments: dict[str, list[AttachmentRow]] = field(default_factory=dict)
    errors: dict[str, list[RunErrorRow]] = field(default_factory=dict)
    run_items: dict[str, list[ItemWithActor]] = field(default_factory=dict)
    group_items: dict[str, list[ItemWithActor]] = field(default_factory=dict)


def _relation(owner: str, name: str) -> ToMany:
    found = OBJECTS[owner].relations[name]
    assert isinstance(found, ToMany)
    return found


async def _children(
    session: AsyncSession, relation: ToMany, parent_ids: list[str]
) -> dict[str, list[Any]]:
    """Each parent's children: tuples with what is read beside them, or bare rows."""
    found = await reads.rows_by_parent(
        session,
        OBJECTS[relation.target].row,
        relation.parent,
        parent_ids,
        relation.order,
        read_with(relation),
    )
    if not relation.read_with:
        found = [[row[0] for row in rows] for rows in found]
    return dict(zip(parent_ids, found, strict=True))


async def load_graph(session: AsyncSession, runs: Sequence[RunRow], org_id: str) -> RunGraph:
    if not runs:
        return RunGraph()
    run_ids = [run.id for run in runs]
    group_ids = [run.message_group_id for run in runs if run.message_group_id is not None]
    found_groups = await reads.rows_by_id(session, MessageGroupRow, group_ids, org_id)
    groups = {group.id: group for group in found_groups if group is not None}
    group_ids = list(groups)
    messages = await _children(session, _relation("MessageGroup", "messages"), group_ids)
    content_ids = [
        content.id for found in messages.values() for _, _, content in found if content is not None
    ]
    return RunGraph(
        groups=groups,
        messages=messages,
        parts=await _children(session, _relation("MessageContent", "parts"), content_ids),
        attachments=await _children(
            session, _relation("MessageContent", "attachments"), content_ids
        ),
        errors=await _children(session, _relation("Run", "errors"), run_ids),
        run_items=await _children(session, _relation("Run", "attached_items"), run_ids),
        group_items=await _children(
            session, _relation("MessageGroup", "attached_items"), group_ids
        ),
    )
