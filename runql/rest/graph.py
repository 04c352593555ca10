"""Everything a page of Run documents shows, read in a fixed number of statements.

Whatever the number of runs, `load_graph` runs seven statements (none for no runs): the
message groups the runs wrote, their messages with actors and contents, the contents' parts
and attachments, the runs' errors, and the items attached to the runs and to the groups.
They run in the caller's session, so a page and what hangs below it come from one snapshot.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from runql.storage import reads
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


async def load_graph(session: AsyncSession, runs: Sequence[RunRow], org_id: str) -> RunGraph:
    if not runs:
        return RunGraph()
    run_ids = [run.id for run in runs]
    group_ids = [run.message_group_id for run in runs if run.message_group_id is not None]
    found_groups = await reads.rows_by_id(session, MessageGroupRow, group_ids, org_id)
    groups = {group.id: group for group in found_groups if group is not None}
    group_ids = list(groups)
    messages = await reads.messages_by_group(session, group_ids)
    content_ids = [
        content.id for found in messages for _, _, content in found if content is not None
    ]
    parts = await reads.rows_by_parent(
        session,
        ContentPartRow,
        ContentPartRow.content_id,  # type: ignore[arg-type]
        content_ids,
        ContentPartRow.position,  # type: ignore[arg-type]
    )
    attachments = await reads.rows_by_parent(
        session,
        AttachmentRow,
        AttachmentRow.content_id,  # type: ignore[arg-type]
        content_ids,
        AttachmentRow.position,  # type: ignore[arg-type]
    )
    errors = await reads.rows_by_parent(
        session,
        RunErrorRow,
        RunErrorRow.run_id,  # type: ignore[arg-type]
        run_ids,
        RunErrorRow.created_at,  # type: ignore[arg-type]
        RunErrorRow.id,  # type: ignore[arg-type]
    )
    run_items = await reads.items_by_parent(session, AttachedItemRow.run_id, run_ids)  # type: ignore[arg-type]
    group_items = await reads.items_by_parent(
        session,
        AttachedItemRow.message_group_id,  # type: ignore[arg-type]
        group_ids,
    )
    return RunGraph(
        groups=groups,
        messages=dict(zip(group_ids, messages, strict=True)),
        parts=dict(zip(content_ids, parts, strict=True)),
        attachments=dict(zip(content_ids, attachments, strict=True)),
        errors=dict(zip(run_ids, errors, strict=True)),
        run_items=dict(zip(run_ids, run_items, strict=True)),
        group_items=dict(zip(group_ids, group_items, strict=True)),
    )
