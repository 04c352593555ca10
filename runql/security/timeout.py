"""The execution timeout: a query or mutation that runs longer is cancelled and answers
TIMEOUT (RUNQL_EXECUTION_TIMEOUT_SECONDS).

The timer cancels an operation where it awaits, and a read on the loop's SQLite reader awaits
only at a turn of the loop (runql.storage.raw.TURN_SECONDS): a query can end past its time
before the timer has had a turn. Such a query answers TIMEOUT too, its time checked as it ends
(`ended_past`, on the view's path and the fast lane's), so that whether a query over its time
answers TIMEOUT does not depend on where its last turn fell. A mutation that ended wrote what
it answers: its result stands."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from runql.limits import settings_of
from runql.security.errors import TIMEOUT

_deadline: ContextVar[float | None] = ContextVar("runql_operation_deadline", default=None)


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Operations run inside end by the event loop's time `at`, not `seconds` from their start:
    what the fast lane spent of an operation's time is not given again to the standard path."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def ended_past(at: float) -> bool:
    """Whether an operation ending now ended past the event loop's time `at`, its deadline."""
    return asyncio.get_running_loop().time() >= at


def timed_out(seconds: float) -> GraphQLError:
    return GraphQLError(
        f"The operation was cancelled after {seconds:g} s, the most one may run.",
        extensions={"code": TIMEOUT, "seconds": seconds},
    )


class ExecutionTimeout(SchemaExtension):
    """Subscriptions are left alone: they are meant to last."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION:
            yield
            return
        seconds = settings_of(context.context).execution_timeout_seconds
        at = _deadline.get()
        if at is None:
            at = asyncio.get_running_loop().time() + seconds
        try:
            async with asyncio.timeout_at(at):
                yield
        except TimeoutError:
            raise timed_out(seconds) from None
        if context.operation_type is OperationType.QUERY and ended_past(at):
            raise timed_out(seconds)  # ended past its time, before the timer had a turn
