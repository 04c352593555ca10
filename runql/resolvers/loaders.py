"""Per-request DataLoaders. Each batch reads in a short session of its own."""

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import SQLModel

from runql.limits import MAX_BATCH
from runql.resolvers.batching import BatchLoader
from runql.storage import pages, reads
from runql.storage.database import Database
from runql.storage.filters import RunFilter
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
    RunRow,
    ThreadRow,
)

Row = TypeVar("Row", bound=SQLModel)
K = TypeVar("K")
V = TypeVar("V")

PageKey = tuple[str, RunFilter | None, PageRequest]
CountKey = tuple[str, RunFilter | None]


class Loaders:
    """Everything a request reads, batched. Build one per request (or per event).

    Each loader is made when first used, so a fresh set costs almost nothing. Objects are
    looked up by id only in the caller's organization; what hangs below them belongs to the
    same one. `batch_size=1` turns batching off: one query per object, the
    naive N+1 way (benchmarks compare against it).
    """

    def __init__(self, database: Database, org_id: str, *, batch_size: int = MAX_BATCH) -> None:
        self._db = database
        self.org_id = org_id
        self._batch_size = batch_size

    @cached_property
    def agent(self) -> BatchLoader[str, AgentRow | None]:
        return self._by_id(AgentRow)

    @cached_property
    def thread(self) -> BatchLoader[str, ThreadRow | None]:
        return self._by_id(ThreadRow)

    @cached_property
    def actor(self) -> BatchLoader[str, ActorRow | None]:
        return self._by_id(ActorRow)

    @cached_property
    def message_group(self) -> BatchLoader[str, MessageGroupRow | None]:
        return self._by_id(MessageGroupRow)

    @cached_property
    def message(self) -> BatchLoader[str, MessageRow | None]:
        return self._by_id(MessageRow)

    @cached_property
    def run(self) -> BatchLoader[str, RunRow | None]:
        return self._by_id(RunRow)

    @cached_property
    def content(self) -> BatchLoader[str, MessageContentRow | None]:
        return self._by_id(MessageContentRow)

    @cached_property
    def part(self) -> BatchLoader[str, ContentPartRow | None]:
        return self._by_id(ContentPartRow)

    @cached_property
    def attachment(self) -> BatchLoader[str, AttachmentRow | None]:
        return self._by_id(AttachmentRow)

    @cached_property
    def attached_item(self) -> BatchLoader[str, AttachedItemRow | None]:
        return self._by_id(AttachedItemRow)

    @cached_property
    def run_error(self) -> BatchLoader[str, RunErrorRow | None]:
        return self._by_id(RunErrorRow)

    @cached_property
    def messages_by_group(self) -> BatchLoader[str, list[MessageRow]]:
        return self._loader(self._messages_by_group)

    @cached_property
    def content_by_message(self) -> BatchLoader[str, MessageContentRow | None]:
        return self._loader(self._content_by_message)

    @cached_property
    def parts_by_content(self) -> BatchLoader[str, list[ContentPartRow]]:
        return self._by_parent(
            ContentPartRow,
            ContentPartRow.content_id,  # type: ignore[arg-type]
            ContentPartRow.position,  # type: ignore[arg-type]
        )

    @cached_property
    def attachments_by_content(self) -> BatchLoader[str, list[AttachmentRow]]:
        return self._by_parent(
            AttachmentRow,
            AttachmentRow.content_id,  # type: ignore[arg-type]
            AttachmentRow.position,  # type: ignore[arg-type]
        )

    @cached_property
    def errors_by_run(self) -> BatchLoader[str, list[RunErrorRow]]:
        return self._by_parent(
            RunErrorRow,
            RunErrorRow.run_id,  # type: ignore[arg-type]
            RunErrorRow.created_at,  # type: ignore[arg-type]
            RunErrorRow.id,  # type: ignore[arg-type]
        )

    @cached_property
    def items_by_run(self) -> BatchLoader[str, list[AttachedItemRow]]:
        return self._loader(self._items_by(AttachedItemRow.run_id))  # type: ignore[arg-type]

    @cached_property
    def items_by_group(self) -> BatchLoader[str, list[AttachedItemRow]]:
        return self._loader(self._items_by(AttachedItemRow.message_group_id))  # type: ignore[arg-type]

    @cached_property
    def run_of_group(self) -> BatchLoader[str, RunRow | None]:
        return self._loader(self._run_of_group)

    @cached_property
    def runs_page_by_thread(self) -> BatchLoader[PageKey, Page[RunRow]]:
        return self._loader(self._pages(RunRow, RunRow.thread_id))  # type: ignore[arg-type]

    @cached_property
    def runs_page_by_agent(self) -> BatchLoader[PageKey, Page[RunRow]]:
        return self._loader(self._pages(RunRow, RunRow.agent_id))  # type: ignore[arg-type]

    @cached_property
    def groups_page_by_thread(self) -> BatchLoader[PageKey, Page[MessageGroupRow]]:
        return self._loader(
            self._pages(MessageGroupRow, MessageGroupRow.thread_id)  # type: ignore[arg-type]
        )

    @cached_property
    def runs_count_by_thread(self) -> BatchLoader[CountKey, int]:
        return self._loader(self._counts(RunRow.thread_id))  # type: ignore[arg-type]

    @cached_property
    def runs_count_by_agent(self) -> BatchLoader[CountKey, int]:
        return self._loader(self._counts(RunRow.agent_id))  # type: ignore[arg-type]

    @cached_property
    def groups_count_by_thread(self) -> BatchLoader[CountKey, int]:
        return self._loader(self._counts(MessageGroupRow.thread_id))  # type: ignore[arg-type]

    def _loader(self, load: Callable[[list[K]], Awaitable[Sequence[V]]]) -> BatchLoader[K, V]:
        return BatchLoader(load, max_batch_size=self._batch_size)

    def _by_id(self, table: type[Row]) -> BatchLoader[str, Row | None]:
        async def load(ids: list[str]) -> list[Row | None]:
            async with self._db.read() as session:
                return await reads.rows_by_id(session, table, ids, self.org_id)

        return self._loader(load)

    def _by_parent(
        self,
        table: type[Row],
        parent: InstrumentedAttribute[Any],
        *order: InstrumentedAttribute[Any],
    ) -> BatchLoader[str, list[Row]]:
        async def load(parent_ids: list[str]) -> list[list[Row]]:
            async with self._db.read() as session:
                return await reads.rows_by_parent(session, table, parent, parent_ids, *order)

        return self._loader(load)

    async def _messages_by_group(self, group_ids: list[str]) -> list[list[MessageRow]]:
        """Messages, priming their actors and contents: the next level needs no statement."""
        async with self._db.read() as session:
            groups = await reads.messages_by_group(session, group_ids)
        for group in groups:
            for message, actor, content in group:
                self.actor.prime(actor.id, actor)
                self.content_by_message.prime(message.id, content)
        return [[message for message, _, _ in group] for group in groups]

    def _items_by(
        self, parent: InstrumentedAttribute[Any]
    ) -> Callable[[list[str]], Awaitable[list[list[AttachedItemRow]]]]:
        async def load(parent_ids: list[str]) -> list[list[AttachedItemRow]]:
            async with self._db.read() as session:
                found = await reads.items_by_parent(session, parent, parent_ids)
            for items in found:
                for _, actor in items:
                    if actor is not None:
                        self.actor.prime(actor.id, actor)
            return [[item for item, _ in items] for items in found]

        return load

    async def _content_by_message(self, ids: list[str]) -> list[MessageContentRow | None]:
        async with self._db.read() as session:
            return await reads.row_by_parent(
                session,
                MessageContentRow,
                MessageContentRow.message_item_id,  # type: ignore[arg-type]
                ids,
            )

    async def _run_of_group(self, group_ids: list[str]) -> list[RunRow | None]:
        """The run a group belongs to: the one that wrote it, else the one it triggered."""
        wanted = set(group_ids)
        statement = select(RunRow).where(
            or_(RunRow.message_group_id.in_(wanted), RunRow.trigger_message_group_id.in_(wanted))  # type: ignore[union-attr,attr-defined]
        )
        async with self._db.read() as session:
            rows = (await session.execute(statement)).scalars().all()
        wrote = {row.message_group_id: row for row in rows}
        triggered = {row.trigger_message_group_id: row for row in rows}
        return [wrote.get(key) or triggered.get(key) for key in group_ids]

    def _pages(
        self, table: type[Row], parent: InstrumentedAttribute[Any]
    ) -> Callable[[list[PageKey]], Awaitable[list[Page[Row]]]]:
        async def load(keys: list[PageKey]) -> list[Page[Row]]:
            by_request: defaultdict[tuple[RunFilter | None, PageRequest], list[str]] = defaultdict(
                list
            )
            for parent_id, run_filter, page in keys:
                by_request[(run_filter, page)].append(parent_id)
            found: dict[PageKey, Page[Row]] = {}
            async with self._db.read() as session:
                for (run_filter, page), parent_ids in by_request.items():
                    conditions = run_filter.conditions() if run_filter else []
                    results = await pages.fetch_pages_by_parent(
                        session, table, parent, parent_ids, conditions, page
                    )
                    for parent_id, result in zip(parent_ids, results, strict=True):
                        found[(parent_id, run_filter, page)] = result
            return [found[key] for key in keys]

        return load

    def _counts(
        self, parent: InstrumentedAttribute[Any]
    ) -> Callable[[list[CountKey]], Awaitable[list[int]]]:
        async def load(keys: list[CountKey]) -> list[int]:
            by_filter: defaultdict[RunFilter | None, list[str]] = defaultdict(list)
            for parent_id, run_filter in keys:
                by_filter[run_filter].append(parent_id)
            found: dict[CountKey, int] = {}
            async with self._db.read() as session:
                for run_filter, parent_ids in by_filter.items():
                    conditions = run_filter.conditions() if run_filter else []
                    counts = await reads.counts_by_parent(session, parent, parent_ids, *conditions)
                    for parent_id, count in zip(parent_ids, counts, strict=True):
                        found[(parent_id, run_filter)] = count
            return [found[key] for key in keys]

        return load
