"""The JSON documents REST answers with: the spec's Run object, key for key and in its order.

Built as plain dicts, one function per object: the contract's models (runql.rest.contract)
declare them for /openapi.json, and tests/rest/test_contract.py holds every answer equal to its
model's, byte for byte. Building a model per row would make `GET /runs` slower (a 100-run page:
0.08 ms to encode the dicts, 2 ms to validate and dump them as models).

Keys are snake_case, enumerations their lower-case values, instants `2025-01-01T00:00:00.000Z`,
a cost's whole amount an integer (runql.encoding.number).
After the spec's keys a Run adds the columns the run graph says REST shows
(runql.storage.graph: `thread_id`, `language`, `country`, `timezone`, `metadata`, `raw_inputs`).
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import inspect

from runql.encoding import number
from runql.rest.graph import ItemWithActor, MessageWithParts, RunGraph
from runql.storage.graph import OBJECTS
from runql.storage.pages import Page
from runql.storage.tables import (
    ActorRow,
    AttachmentRow,
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    RunErrorRow,
    RunRow,
)
from runql.storage.types import UTCDateTime, format_instant

Document = dict[str, Any]


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def _as_is(value: Any) -> Any:
    return value


def shown(name: str) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """The columns REST shows of object `name` after the spec's keys: each document key (the
    column's name), the row's attribute and how its value is written (instants as text)."""
    found = OBJECTS[name]
    mapper = inspect(found.row)
    columns: list[tuple[str, str, Callable[[Any], Any]]] = []
    for key in found.shown:
        column = found.table.c[key]
        attribute = mapper.get_property_by_column(column).key
        convert = _instant if isinstance(column.type, UTCDateTime) else _as_is
        columns.append((key, attribute, convert))
    return columns


_RUN_SHOWN = shown("Run")


def actor_document(actor: ActorRow | None) -> Document | None:
    if actor is None:
        return None
    return {
        "id": actor.id,
        "name": actor.name,
        "type": actor.type,
        "metadata": actor.metadata_,
        "created_at": _instant(actor.created_at),
        "updated_at": _instant(actor.updated_at),
    }


def attachment_document(attachment: AttachmentRow) -> Document:
    return {
        "id": attachment.id,
        "type": attachment.type,
        "file_id": attachment.file_id,
        "url": attachment.url,
        "caption": attachment.caption,
    }


def part_document(part: ContentPartRow) -> Document:
    return {"id": part.id, "type": part.type, "text": part.text}


def content_document(content: MessageContentRow | None, graph: RunGraph) -> Document | None:
    if content is None:
        return None
    return {
        "id": content.id,
        "message_item_id": content.message_item_id,
        "attachments": [attachment_document(a) for a in graph.attachments.get(content.id, [])],
        "parts": [part_document(part) for part in graph.parts.get(content.id, [])],
    }


def message_document(found: MessageWithParts, graph: RunGraph) -> Document:
    message, actor, content = found
    error = None
    if message.error_code is not None:
        error = {"code": message.error_code, "message": message.error_message or ""}
    return {
        "id": message.id,
        "status": message.status,
        "type": message.type,
        "message_group_id": message.message_group_id,
        "thread_id": message.thread_id,
        "actor": actor_document(actor),
        "content": content_document(content, graph),
        "error": error,
        "created_at": _instant(message.created_at),
    }


def item_document(found: ItemWithActor) -> Document:
    item, actor = found
    return {
        "id": item.id,
        "actor": actor_document(actor),
        "key": item.key,
        "value": item.value,
        "created_at": _instant(item.created_at),
    }


def run_summary_document(run: RunRow) -> Document:
    """The run as a message group shows it."""
    return {
        "id": run.id,
        "agent_id": run.agent_id,
        "status": run.status,
        "metadata": run.metadata_,
        "started_at": _instant(run.started_at),
        "created_at": _instant(run.created_at),
        "completed_at": _instant(run.completed_at),
    }


def group_document(group: MessageGroupRow, run: RunRow, graph: RunGraph) -> Document:
    """The message group `run` wrote."""
    return {
        "id": group.id,
        "status": group.status,
        "type": group.type,
        "created_at": _instant(group.created_at),
        "thread_id": group.thread_id,
        "parent_message_group_id": group.parent_message_group_id,
        "metadata": group.metadata_,
        "messages": [message_document(found, graph) for found in graph.messages.get(group.id, [])],
        "attached_items": [item_document(found) for found in graph.group_items.get(group.id, [])],
        "run": run_summary_document(run),
    }


def error_document(error: RunErrorRow) -> Document:
    return {
        "id": error.id,
        "run_id": error.run_id,
        "code": error.code,
        "message": error.message,
        "metadata": error.metadata_,
        "created_at": _instant(error.created_at),
    }


def _cost(run: RunRow) -> Document | None:
    if run.cost_amount is None or run.cost_unit is None:
        return None
    return {"amount": number(run.cost_amount), "unit": run.cost_unit}


def run_document(run: RunRow, graph: RunGraph) -> Document:
    group = graph.groups.get(run.message_group_id) if run.message_group_id else None
    return {
        "id": run.id,
        "status": run.status,
        "agent_id": run.agent_id,
        "trigger_message_group_id": run.trigger_message_group_id,
        "cost": _cost(run),
        "message_group": group_document(group, run, graph) if group is not None else None,
        "errors": [error_document(error) for error in graph.errors.get(run.id, [])],
        "attached_items": [item_document(found) for found in graph.run_items.get(run.id, [])],
        "started_at": _instant(run.started_at),
        "created_at": _instant(run.created_at),
        "completed_at": _instant(run.completed_at),
        **{key: convert(getattr(run, attribute)) for key, attribute, convert in _RUN_SHOWN},
    }


def list_document(page: Page[RunRow], graph: RunGraph) -> Document:
    """A page of runs in Metorial's list envelope. The cursors are the page's ends whenever it
    has runs, so that a client can also ask later for runs added beyond them."""
    cursors = [cursor.encode() for cursor in (page.cursors[:1] + page.cursors[-1:])]
    return {
        "items": [run_document(run, graph) for run in page.rows],
        "pagination": {
            "has_more_before": page.has_previous_page,
            "has_more_after": page.has_next_page,
            "next_cursor": cursors[-1] if cursors else None,
            "prev_cursor": cursors[0] if cursors else None,
        },
    }
