"""`GET /runs` query parameters, read into the storage's RunFilter and PageRequest.

- `id`, `status`, `agent_id`, `thread_id`: one value or several, repeated
  (`status=success&status=error`), comma-separated (`status=success,error`), or in the array
  encodings of qs and axios (`status[]=success&status[]=error`,
  `status[0]=success&status[1]=error`), in any mix.
- `created_at`, `started_at`, `completed_at`: ranges, one bound per parameter, written
  `created_at[gte]=2025-01-01T00:00:00Z` or `created_at.gte=…`; operators gt, gte, lt, lte.
- `limit` (default 20, at most 100), `after` or `before` (a cursor from `pagination`), and
  `order` (`desc`, the default, or `asc`) by creation time.

Anything else, or anything given twice, is refused with the parameter named.
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from runql.enums import RunStatus
from runql.errors import BadUserInput
from runql.ids import Kind, require
from runql.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from runql.rest.contract import ListRuns
from runql.rest.contract import TimeRange as TimeRangeParameter
from runql.storage.filters import InvalidFilter, RunFilter, TimeRange
from runql.storage.pages import Cursor, InvalidCursor, PageRequest
from runql.text import check_text

LIST_FILTERS = {"id": Kind.RUN, "agent_id": Kind.AGENT, "thread_id": Kind.THREAD}
RANGE_FILTERS = tuple(
    name
    for name, field in ListRuns.model_fields.items()
    if field.annotation == TimeRangeParameter | None
)
OPERATORS = tuple(TimeRangeParameter.model_fields)
SINGLE_PARAMETERS = ("limit", "after", "before", "order")
ORDERS = {"desc": True, "asc": False}
ALL_PARAMETERS = tuple(ListRuns.model_fields)
LIST_PARAMETERS = (*LIST_FILTERS, "status")

_RANGE_PARAMETER = re.compile(rf"({'|'.join(RANGE_FILTERS)})(?:\[([^\]]*)\]|\.(.*))")
_LIST_ITEM = re.compile(rf"({'|'.join(LIST_PARAMETERS)})\[([^\]]*)\]")


@dataclass(frozen=True)
class ListRequest:
    filter: RunFilter
    page: PageRequest


def _values(parameter: str, raw: list[str]) -> tuple[str, ...]:
    values = tuple(value.strip() for joined in raw for value in joined.split(","))
    if any(not value for value in values):
        raise BadUserInput(
            f"{parameter} has an empty value; give one or more, comma-separated", field=parameter
        )
    return values


def _ids(parameter: str, raw: list[str] | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    values = _values(parameter, raw)
    for value in values:
        require(value, LIST_FILTERS[parameter], parameter)
    return values


def _statuses(raw: list[str] | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    values = _values("status", raw)
    known = [status.value for status in RunStatus]
    for value in values:
        if value not in known:
            raise BadUserInput(
                f"{value!r} is not a run status: use {', '.join(known)}", field="status"
            )
    return values


def parse_instant(value: str, parameter: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        hint = " (send + as %2B in a query string)" if " " in value else ""
        raise BadUserInput(
            f"{value!r} is not an ISO 8601 date-time, such as 2025-01-01T00:00:00Z{hint}",
            field=parameter,
        ) from None
    if parsed.tzinfo is None:
        raise BadUserInput(
            f"{value!r} has no time zone: end it with Z or an offset like "
            "+02:00 (sent as %2B02:00)",
            field=parameter,
        )
    return parsed.astimezone(UTC)


def _range_bound(parameter: str) -> tuple[str, str] | None:
    """(field, operator) of a range parameter such as `created_at[gte]`; None for others."""
    if parameter in RANGE_FILTERS:
        raise BadUserInput(
            f"{parameter} is a range: write {parameter}[gte]=2025-01-01T00:00:00Z "
            f"(operators {', '.join(OPERATORS)})",
            field=parameter,
        )
    match = _RANGE_PARAMETER.fullmatch(parameter)
    if match is None:
        return None
    name, bracketed, dotted = match.groups()
    operator = bracketed if bracketed is not None else dotted
    if operator not in OPERATORS:
        raise BadUserInput(
            f"{operator!r} is not a range operator: use {', '.join(OPERATORS)}", field=parameter
        )
    return name, operator


def _single(parameter: str, values: list[str]) -> str:
    if len(values) > 1:
        raise BadUserInput(
            f"{parameter} is given {len(values)} times; give it once", field=parameter
        )
    return values[0]


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        limit = int(raw)
    except ValueError:
        raise BadUserInput(f"limit must be a whole number, not {raw!r}", field="limit") from None
    if limit < 1:
        raise BadUserInput(f"limit must be at least 1, not {limit}", field="limit")
    if limit > MAX_PAGE_SIZE:
        raise BadUserInput(
            f"limit is capped at {MAX_PAGE_SIZE} (got {limit}): page with the "
            "after and before cursors instead",
            field="limit",
        )
    return limit


def _cursor(raw: str, parameter: str) -> Cursor:
    try:
        return Cursor.decode(raw)
    except InvalidCursor as error:
        raise BadUserInput(str(error), field=parameter) from None


def _page(single: dict[str, str]) -> PageRequest:
    after, before = single.get("after"), single.get("before")
    if after is not None and before is not None:
        raise BadUserInput("give after or before, not both", field="before")
    order = single.get("order", "desc")
    if order not in ORDERS:
        raise BadUserInput(f"order is asc or desc, not {order!r}", field="order")
    cursor = None
    if after is not None:
        cursor = _cursor(after, "after")
    elif before is not None:
        cursor = _cursor(before, "before")
    return PageRequest(
        limit=_limit(single.get("limit")),
        backward=before is not None,
        cursor=cursor,
        newest_first=ORDERS[order],
    )


def _list_name(parameter: str) -> str:
    """The list parameter that `status[]` or `status[0]` (qs's and axios's arrays) gives a
    value of; any other parameter as it is."""
    match = _LIST_ITEM.fullmatch(parameter)
    if match is None:
        return parameter
    name, index = match.groups()
    if index and not (index.isascii() and index.isdigit()):
        raise BadUserInput(
            f"{parameter} is not a way to give {name}: write {name}=…&{name}=…, "
            f"{name}[]=…&{name}[]=… or {name}[0]=…&{name}[1]=…",
            field=parameter,
        )
    return name


def _unknown(parameter: str) -> BadUserInput:
    return BadUserInput(
        f"{parameter!r} is not a parameter of GET /runs; they are {', '.join(ALL_PARAMETERS)}",
        field=parameter,
    )


def list_request(params: QueryParams) -> ListRequest:
    grouped: defaultdict[str, list[str]] = defaultdict(list)
    for parameter, value in params.multi_items():
        check_text(parameter, "query string")
        grouped[_list_name(parameter)].append(check_text(value, parameter) or "")
    bounds: defaultdict[str, dict[str, datetime]] = defaultdict(dict)
    single: dict[str, str] = {}
    for parameter, values in grouped.items():
        if parameter in SINGLE_PARAMETERS:
            single[parameter] = _single(parameter, values)
        elif parameter not in LIST_FILTERS and parameter != "status":
            bound = _range_bound(parameter)
            if bound is None:
                raise _unknown(parameter)
            name, operator = bound
            if operator in bounds[name]:
                raise BadUserInput(
                    f"{name} {operator} is given twice; give it once", field=parameter
                )
            bounds[name][operator] = parse_instant(_single(parameter, values), parameter)
    ranges = {name: TimeRange(**given) for name, given in bounds.items()}
    run_filter = RunFilter(
        ids=_ids("id", grouped.get("id")),
        statuses=_statuses(grouped.get("status")),
        agent_ids=_ids("agent_id", grouped.get("agent_id")),
        thread_ids=_ids("thread_id", grouped.get("thread_id")),
        created_at=ranges.get("created_at"),
        started_at=ranges.get("started_at"),
        completed_at=ranges.get("completed_at"),
    )
    try:
        run_filter.check()
    except InvalidFilter as error:
        raise BadUserInput(str(error), field=error.field) from None
    return ListRequest(run_filter, _page(single))
