"""The arguments of the schema's lists, checked once: each list's check takes its GraphQL
arguments and returns a Listing (runql.resolvers.pagination), or raises the argument's error.

The schema's resolver of a list is made from its check (`list_resolver`): its signature, which
strawberry reads for the field's arguments, is the check's. The fast path calls the same checks
(runql.fastpath.model), so a refused argument is the same error on either executor.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry import ID

from runql.ids import Kind, require
from runql.resolvers.context import Info
from runql.resolvers.graph import checked_filter
from runql.resolvers.pagination import Connection, Listing, page_request
from runql.schema.inputs import CreatedOrder, RunFilterInput
from runql.storage.pages import PageRequest

Check = Callable[..., Listing]
Load = Callable[[Any, Info, Listing], Awaitable[Connection[Any]]]


def _page(
    order_by: CreatedOrder,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return page_request(
        first=first, after=after, last=last, before=before, newest_first=order_by.newest_first
    )


def root_runs(
    filter: RunFilterInput | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Listing:
    """Query.runs: the filter first, then the page."""
    run_filter = checked_filter(filter)
    return Listing(_page(order_by, first, after, last, before), run_filter)


def root_agents(
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Listing:
    return Listing(_page(order_by, first, after, last, before))


def root_threads(
    agent_id: list[ID] | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Listing:
    """Query.threads: each agent id, then the page."""
    for index, value in enumerate(agent_id or ()):
        require(value, Kind.AGENT, f"agentId[{index}]")
    agent_ids = tuple(agent_id) if agent_id is not None else None
    return Listing(_page(order_by, first, after, last, before), agent_ids=agent_ids)


def runs_of(
    filter: RunFilterInput | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Listing:
    """Thread.runs and Agent.runs: the page first, then the filter."""
    page = _page(order_by, first, after, last, before)
    return Listing(page, checked_filter(filter))


def groups_of(
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_ASC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Listing:
    return Listing(_page(order_by, first, after, last, before))


def list_resolver(check: Check, load: Load, *, root: bool = True) -> Callable[..., Any]:
    """A list field's resolver: `check` its arguments, then `load` the page. Strawberry reads
    the arguments from its signature: `root` (for an object's list) and `info`, then the
    check's parameters."""

    async def resolve(**arguments: Any) -> Connection[Any]:
        source = arguments.pop("root", None)
        info = arguments.pop("info")
        return await load(source, info, check(**arguments))

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("info", keyword, annotation=Info)]
    if root:
        parameters.insert(0, inspect.Parameter("root", keyword, annotation=Any))
    parameters += [p.replace(kind=keyword) for p in inspect.signature(check).parameters.values()]
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=Connection[Any]
    )
    resolve.__name__ = check.__name__
    return resolve
