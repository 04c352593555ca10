"""The fast lane: a query the planner covers, from the request's bytes to the response's bytes,
past strawberry's view (no request adapter, context, extensions, result objects or Response).

The endpoint offers it each POST of JSON (runql/endpoint.py). The lane answers only what the
standard view would answer with `{"data": ...}` and no error: a prepared query (prepared.py),
its variables coerced as graphql-core coerces them, its plan, run under the operation's
timeout, without an error in the result. It records the operation as ObserveOperations does
(metrics, span, the access log's operation). Anything else it declines (None), and the view
answers, unchanged: the buffered request is replayed to it (`replaying`). A lane that runs out
of time raises LaneTimeout, whose deadline the view then keeps (runql.security.timeout).

A point read (point.py) on a SQLite file's loop reader is answered in one turn of the loop,
with no timer: its one read is bounded by the reader's own budget, and the operation's time
is checked after it (past it, LaneTimeout as the timer would have raised).

Off in development (where responses carry `extensions`), with RUNQL_FAST_LANE=0, and wherever
the schema runs no fast path (RUNQL_FASTPATH=0).
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import strawberry
from graphql import GraphQLSchema
from graphql.execution.values import VariableValues, get_variable_values
from starlette.types import Message, Receive, Scope, Send
from strawberry.http import GraphQLRequestData
from strawberry.schema.base import BaseSchema

from runql.fastpath.arguments import Arguments
from runql.fastpath.cache import MAX_PLANS, condition_variables, plans_of
from runql.fastpath.executor import FastExecutor
from runql.fastpath.plan import OperationPlan
from runql.fastpath.point import PointRead, Query, point_read
from runql.fastpath.prepared import Prepared, PreparedOperations
from runql.fastpath.run import run_plan, run_point
from runql.fastpath.switch import is_standard_only
from runql.fastpath.unsupported import DECLINED
from runql.limits import Limits
from runql.operations import tracing
from runql.operations.extension import SUCCESS, observed
from runql.operations.requests import CURRENT_REQUEST
from runql.security.media import content_type_header
from runql.security.text_input import fit_variables
from runql.security.timeout import ended_past
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.raw import loop_reads

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("runql.fastpath")

MAX_COERCION_ERRORS = 50  # graphql-core's, as the standard executor coerces variables
QUERY = "query"
Planned = tuple[Prepared, OperationPlan, VariableValues]
Answer = bytes | None | Coroutine[Any, Any, bytes | None]  # a body now, or one to await


class LaneTimeout(Exception):
    """The operation ran out of time on the lane; the view answers it by `deadline`."""

    def __init__(self, deadline: float) -> None:
        super().__init__(deadline)
        self.deadline = deadline


class FastLane:
    def __init__(self, schema: GraphQLSchema, database: Database, settings: Settings) -> None:
        self._schema = schema
        self._database = database
        self._seconds = settings.execution_timeout_seconds
        self._prepared = PreparedOperations(schema, Limits.from_settings(settings))
        self._fixed: dict[int, tuple[Prepared, OperationPlan | None]] = {}  # see _plan
        self.served = 0  # requests the lane answered
        self.point_reads = 0  # of which by a point read (point.py)

    @classmethod
    def of(cls, schema: BaseSchema, database: Database, settings: Settings) -> "FastLane | None":
        """The endpoint's lane, where it may run."""
        if (
            not settings.fast_lane
            or settings.is_development
            or not isinstance(schema, strawberry.Schema)
            or schema.execution_context_class is not FastExecutor
        ):
            return None
        return cls(schema._schema, database, settings)

    async def answer(self, request: GraphQLRequestData, org_id: str) -> bytes | None:
        """The response body, or None: the standard view answers."""
        planned = self.plan(request)
        if planned is None:
            return None
        found = self.run(planned, org_id)
        return found if found is None or isinstance(found, bytes) else await found

    def plan(self, request: GraphQLRequestData) -> Planned | None:
        """The request's prepared operation, plan and variables; None for what the view
        answers (nothing is read yet: runql/wire.py takes the key's rate-limit token between
        the two halves)."""
        try:
            return self._planned(request)
        except Exception:  # a fault of the lane's own: the view still answers
            log.warning("fast lane failed; the standard view answers", exc_info=True)
            return None

    def run(self, planned: Planned, org_id: str) -> Answer:
        """The planned operation's body: at once where it is read in this turn of the loop (a
        point read on SQLite's loop reader), else a coroutine; None (now or awaited): the view
        answers. Raises LaneTimeout past the operation's time."""
        if not tracing.is_enabled():  # no span: not even the context manager's generator
            return self._recorded(None, *planned, org_id)
        return self._traced(planned, org_id)

    async def _traced(self, planned: Planned, org_id: str) -> bytes | None:
        with tracing.operation_span() as span:
            found = self._recorded(span, *planned, org_id)
            return found if found is None or isinstance(found, bytes) else await found

    def _planned(self, request: GraphQLRequestData) -> Planned | None:
        if request.query is None or is_standard_only():
            return None
        prepared = self._prepared.get(request.query, request.operation_name)
        if prepared is None or not fit_variables(request.variables):
            return None  # the view refuses unfit text, naming the field
        inputs = request.variables or {}
        variables = prepared.variables(inputs) or get_variable_values(
            self._schema,
            prepared.operation.variable_definitions or (),
            inputs,
            max_errors=MAX_COERCION_ERRORS,
        )
        if isinstance(variables, list):  # coercion errors: the view reports them
            return None
        plan = self._plan(prepared, variables)
        return None if plan is None else (prepared, plan, variables)

    def _plan(self, prepared: Prepared, variables: VariableValues) -> OperationPlan | None:
        """The plan cache's plan; kept by the prepared operation where no @include or @skip
        takes a variable, so that it is the same plan whatever the variables are."""
        fixed = self._fixed.get(id(prepared))
        if fixed is not None and fixed[0] is prepared:
            return fixed[1]
        plan = plans_of(self._schema).plan(
            self._schema, prepared.fragments, variables, prepared.operation
        )
        if not condition_variables(prepared.operation, prepared.fragments):
            if len(self._fixed) >= MAX_PLANS:
                self._fixed.clear()
            self._fixed[id(prepared)] = (prepared, plan)  # held: its id stays its own
        return plan

    def _recorded(
        self,
        span: "Span | None",
        prepared: Prepared,
        plan: OperationPlan,
        variables: VariableValues,
        org_id: str,
    ) -> Answer:
        started = time.perf_counter()
        record = CURRENT_REQUEST.get()
        before = record.statements if record is not None else 0
        body = self._at_once(plan, variables, org_id, started)
        if body is None or isinstance(body, bytes):
            return self._observed(body, span, prepared, started, before)
        return self._awaited(body, span, prepared, started, before)

    async def _awaited(
        self,
        pending: Coroutine[Any, Any, bytes | None],
        span: "Span | None",
        prepared: Prepared,
        started: float,
        before: int,
    ) -> bytes | None:
        return self._observed(await pending, span, prepared, started, before)

    def _observed(
        self,
        body: bytes | None,
        span: "Span | None",
        prepared: Prepared,
        started: float,
        statements_before: int,
    ) -> bytes | None:
        """An answered operation's metrics, span and access-log operation, as
        ObserveOperations records them."""
        if body is None:
            return None
        record = CURRENT_REQUEST.get()
        statements = record.statements - statements_before if record is not None else 0
        observed(span, QUERY, prepared.name, SUCCESS, time.perf_counter() - started, statements)
        self.served += 1
        return body

    def _at_once(
        self, plan: OperationPlan, variables: VariableValues, org_id: str, started: float
    ) -> Answer:
        """A point read on the loop's SQLite reader, answered in this turn of the loop (its
        read is bounded by the reader's budget, as any of its reads); the rest to await: a
        read the reader hands to its thread (under the timeout), any other plan (`_run`).
        Its time runs from `started` (perf_counter), as the operation's."""
        point = point_read(plan)
        reads = None if point is None else loop_reads(self._database)
        if point is None or reads is None:
            return self._run(plan, variables, org_id)
        try:
            query = point.query(reads, org_id, Arguments(self._schema, variables))
            if query is None:
                return None  # a refused id: the view reports it
            if query.one is None:
                return self._run(plan, variables, org_id)
            args = query.arguments()
            rows = reads.run_now(query.one.sql, args)
            if rows is None:
                left = self._seconds - (time.perf_counter() - started)
                deadline = asyncio.get_running_loop().time() + left
                return self._later(point, query, query.one.sql, args, deadline)
            body = point.answer(query, rows)
        except DECLINED as reason:
            log.debug("fast lane declined: %s", reason)
            return None
        except Exception:
            log.warning("fast lane failed; the standard view answers", exc_info=True)
            return None
        if time.perf_counter() - started >= self._seconds:  # as the timeout would have fired
            raise LaneTimeout(asyncio.get_running_loop().time())  # (passed: the view's is too)
        self.point_reads += 1
        return body

    async def _later(
        self, point: PointRead, query: Query, sql: str, args: list[Any], deadline: float
    ) -> bytes | None:
        """The rest of a point read the loop's reader handed to its thread: under the
        timeout, as `_run` reads."""
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                rows = await query.execution.reads.run_later(sql, args)
            body = point.answer(query, rows)
        except DECLINED as reason:
            log.debug("fast lane declined: %s", reason)
            return None
        except Exception:
            if timeout.expired():
                raise LaneTimeout(deadline) from None
            log.warning("fast lane failed; the standard view answers", exc_info=True)
            return None
        self.point_reads += 1
        return body

    async def _run(
        self, plan: OperationPlan, variables: VariableValues, org_id: str
    ) -> bytes | None:
        """The body of the plan's result; None where it has errors (coded and masked by the
        view) or the plan declined."""
        deadline = asyncio.get_running_loop().time() + self._seconds
        timeout = asyncio.timeout_at(deadline)
        arguments = Arguments(self._schema, variables)
        point = point_read(plan)
        try:
            async with timeout:
                if point is not None:
                    body = await run_point(point, self._database, org_id, arguments)
                else:
                    result = await run_plan(plan, self._database, org_id, arguments)
            if ended_past(deadline):  # the view answers TIMEOUT by the deadline
                raise LaneTimeout(deadline)
            if point is not None:
                self.point_reads += body is not None
                return body
            return None if result.errors else orjson.dumps({"data": result.data})
        except LaneTimeout:
            raise
        except DECLINED as reason:  # the view reports those
            log.debug("fast lane declined: %s", reason)
        except Exception:
            if timeout.expired():
                raise LaneTimeout(deadline) from None
            log.warning("fast lane failed; the standard view answers", exc_info=True)
        return None


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names are lower case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def buffered(receive: Receive) -> list[Message]:
    """The request's messages up to the end of its body (or the client's leaving)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def body_of(messages: Sequence[Message]) -> bytes | None:
    """The whole body; None if the client left before it all arrived."""
    if messages[-1]["type"] != "http.request":
        return None
    return b"".join(m.get("body", b"") for m in messages)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` as the view must see it: the buffered messages first, then the server's."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


@lru_cache(maxsize=8)
def _content_type(media_type: str) -> tuple[bytes, bytes]:
    return (b"content-type", content_type_header(media_type).encode("latin-1"))


@lru_cache(maxsize=8)
def content_type_line(media_type: str) -> bytes:
    """The Content-Type header `send_body` sends, as a line of the response's head."""
    name, value = _content_type(media_type)
    return name + b": " + value + b"\r\n"


async def send_body(send: Send, body: bytes, media_type: str) -> None:
    """200 with the body, headers as the view's Response gives them."""
    headers: list[tuple[bytes, bytes]] = [
        (b"content-length", str(len(body)).encode()),
        _content_type(media_type),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
