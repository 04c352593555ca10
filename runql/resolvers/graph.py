"""Resolvers of the run graph's links: each one loads through this request's loaders."""

from dataclasses import dataclass
from typing import Any

from strawberry.utils.str_converters import to_camel_case

from runql.agents.secrets import shown_config
from runql.errors import BadUserInput
from runql.ids import Kind, require
from runql.resolvers.batching import BatchLoader
from runql.resolvers.context import Info
from runql.resolvers.loaders import CountKey, PageKey
from runql.resolvers.pagination import Connection, connection, page_request
from runql.schema.inputs import CreatedOrder, RunFilterInput
from runql.storage.filters import InvalidFilter, RunFilter
from runql.storage.pages import Page, PageRequest
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    AttachedItemRow,
    AttachmentRow,
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunErrorRow,
    RunEventRow,
    RunRow,
    ThreadRow,
)


@dataclass(frozen=True, slots=True)
class CostValue:
    amount: float
    unit: str


@dataclass(frozen=True, slots=True)
class MessageErrorValue:
    code: str
    message: str


def agent_config(root: AgentRow) -> dict[str, Any]:
    return shown_config(root.config)


def run_cost(root: RunRow) -> CostValue | None:
    if root.cost_amount is None or root.cost_unit is None:
        return None
    return CostValue(root.cost_amount, root.cost_unit)


async def run_agent(root: RunRow, info: Info) -> AgentRow | None:
    return await info.context.loaders.agent.load(root.agent_id)


async def run_thread(root: RunRow, info: Info) -> ThreadRow | None:
    return await info.context.loaders.thread.load(root.thread_id)


async def run_message_group(root: RunRow, info: Info) -> MessageGroupRow | None:
    if root.message_group_id is None:
        return None
    return await info.context.loaders.message_group.load(root.message_group_id)


async def run_trigger_message_group(root: RunRow, info: Info) -> MessageGroupRow | None:
    return await info.context.loaders.message_group.load(root.trigger_message_group_id)


async def run_errors(root: RunRow, info: Info) -> list[RunErrorRow]:
    return await info.context.loaders.errors_by_run.load(root.id)


async def run_attached_items(root: RunRow, info: Info) -> list[AttachedItemRow]:
    return await info.context.loaders.items_by_run.load(root.id)


async def group_run(root: MessageGroupRow, info: Info) -> RunRow | None:
    return await info.context.loaders.run_of_group.load(root.id)


async def group_parent(root: MessageGroupRow, info: Info) -> MessageGroupRow | None:
    if root.parent_message_group_id is None:
        return None
    return await info.context.loaders.message_group.load(root.parent_message_group_id)


async def group_thread(root: MessageGroupRow, info: Info) -> ThreadRow | None:
    return await info.context.loaders.thread.load(root.thread_id)


async def group_messages(root: MessageGroupRow, info: Info) -> list[MessageRow]:
    return await info.context.loaders.messages_by_group.load(root.id)


async def group_attached_items(root: MessageGroupRow, info: Info) -> list[AttachedItemRow]:
    return await info.context.loaders.items_by_group.load(root.id)


def message_error(root: MessageRow) -> MessageErrorValue | None:
    if root.error_code is None:
        return None
    return MessageErrorValue(root.error_code, root.error_message or "")


async def message_actor(root: MessageRow, info: Info) -> ActorRow | None:
    return await info.context.loaders.actor.load(root.actor_id)


async def message_content(root: MessageRow, info: Info) -> MessageContentRow | None:
    return await info.context.loaders.content_by_message.load(root.id)


async def message_group(root: MessageRow, info: Info) -> MessageGroupRow | None:
    return await info.context.loaders.message_group.load(root.message_group_id)


async def content_parts(root: MessageContentRow, info: Info) -> list[ContentPartRow]:
    return await info.context.loaders.parts_by_content.load(root.id)


async def content_attachments(root: MessageContentRow, info: Info) -> list[AttachmentRow]:
    return await info.context.loaders.attachments_by_content.load(root.id)


async def item_actor(root: AttachedItemRow, info: Info) -> ActorRow | None:
    if root.actor_id is None:
        return None
    return await info.context.loaders.actor.load(root.actor_id)


async def item_run(root: AttachedItemRow, info: Info) -> RunRow | None:
    return await info.context.loaders.run.load(root.run_id)


async def event_run(root: RunEventRow, info: Info) -> RunRow | None:
    return await info.context.loaders.run.load(root.run_id)


async def error_run(root: RunErrorRow, info: Info) -> RunRow | None:
    return await info.context.loaders.run.load(root.run_id)


async def thread_agent(root: ThreadRow, info: Info) -> AgentRow | None:
    return await info.context.loaders.agent.load(root.agent_id)


def checked_filter(filter: RunFilterInput | None) -> RunFilter | None:
    if filter is None:
        return None
    run_filter = filter.to_filter()
    for values, kind, name in (
        (run_filter.ids, Kind.RUN, "id"),
        (run_filter.agent_ids, Kind.AGENT, "agentId"),
        (run_filter.thread_ids, Kind.THREAD, "threadId"),
    ):
        for index, value in enumerate(values or ()):
            require(value, kind, f"filter.{name}[{index}]")
    try:
        run_filter.check(lambda name: f"filter.{to_camel_case(name)}")
    except InvalidFilter as error:
        raise BadUserInput(str(error), field=error.field) from None
    return run_filter


async def _runs_of(
    parent_id: str,
    pages: BatchLoader[PageKey, Page[RunRow]],
    counts: BatchLoader[CountKey, int],
    filter: RunFilterInput | None,
    page: PageRequest,
) -> Connection[Any]:
    run_filter = checked_filter(filter)
    result = await pages.load((parent_id, run_filter, page))
    return connection(result, lambda: counts.load((parent_id, run_filter)))


async def thread_runs(
    root: ThreadRow,
    info: Info,
    filter: RunFilterInput | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    loaders = info.context.loaders
    page = page_request(
        first=first, after=after, last=last, before=before, newest_first=order_by.newest_first
    )
    return await _runs_of(
        root.id, loaders.runs_page_by_thread, loaders.runs_count_by_thread, filter, page
    )


async def agent_runs(
    root: AgentRow,
    info: Info,
    filter: RunFilterInput | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    loaders = info.context.loaders
    page = page_request(
        first=first, after=after, last=last, before=before, newest_first=order_by.newest_first
    )
    return await _runs_of(
        root.id, loaders.runs_page_by_agent, loaders.runs_count_by_agent, filter, page
    )


async def thread_message_groups(
    root: ThreadRow,
    info: Info,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_ASC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    loaders = info.context.loaders
    page = page_request(
        first=first, after=after, last=last, before=before, newest_first=order_by.newest_first
    )
    result = await loaders.groups_page_by_thread.load((root.id, None, page))
    return connection(result, lambda: loaders.groups_count_by_thread.load((root.id, None)))


async def connection_total(root: Connection[Any]) -> int:
    return await root.count()
