"""The hook: strawberry's execution context class (a graphql-core executor), given to the
Schema as `execution_context_class`. Parsing, validation, the limits and every extension run as
before; only the execution of a query changes: its plan runs, if the planner covers it, and the
standard executor runs everything else (mutations, subscriptions, introspection...). A
subscription's event whose selection reads only the event's own columns is built from its row
by the event's plan (planner.plan_event), and executed by the standard executor otherwise; a
shared stream's execution (runql.fanout.streams) is given that plan, and sends such events
without yielding them to strawberry at all."""

import logging
from collections.abc import Awaitable
from functools import cache
from typing import Any, cast

from graphql import ExecutionResult, GraphQLSchema, OperationType
from graphql.execution import Executor
from strawberry.extensions import SchemaExtension

from runql.fastpath.arguments import Arguments
from runql.fastpath.cache import plans_of
from runql.fastpath.plan import OperationPlan
from runql.fastpath.planner import EventPlan
from runql.fastpath.report import FAST, STANDARD, record
from runql.fastpath.run import run_plan
from runql.fastpath.switch import is_standard_only
from runql.fastpath.unsupported import DECLINED
from runql.limits import MAX_BATCH
from runql.resolvers.context import Context
from runql.schema.execution import StandardExecutor

log = logging.getLogger("runql.fastpath")

Result = ExecutionResult | Awaitable[ExecutionResult]


def _batches(context: Context) -> bool:
    """Loaders made to load one object at a time (the naive comparison) ask for the standard
    executor, which reads through them."""
    return getattr(context.loaders, "_batch_size", MAX_BATCH) > 1


class _Built:
    """An event's result, built by its plan: graphql-core asks its executor to execute it."""

    __slots__ = ("result",)

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


@cache
def _plain_results(schema: GraphQLSchema) -> bool:
    """Whether a result of this schema is its data and errors alone: none of its (strawberry)
    extensions adds to it (`get_results`)."""
    extensions = getattr(getattr(schema, "_strawberry_schema", None), "extensions", None)
    if extensions is None:
        return False
    return not any(_adds_to_results(found) for found in extensions)


def _adds_to_results(extension: object) -> bool:
    kind = extension if isinstance(extension, type) else type(extension)
    return getattr(kind, "get_results", None) is not SchemaExtension.get_results


class FastExecutor(StandardExecutor):
    _event_plan: EventPlan | None = None
    _event_planned = False

    @classmethod
    def build(cls, *arguments: Any, **named: Any) -> Any:
        """graphql-core's executor for an operation (or its errors); for a subscription that a
        shared stream runs, the stream is told how its events are built (Lead.build)."""
        built = super().build(*arguments, **named)
        if isinstance(built, FastExecutor):
            built._lead_stream()
        return built

    def _lead_stream(self) -> None:
        lead = getattr(self.context_value, "lead", None)
        if (
            lead is None
            or self.operation.operation is not OperationType.SUBSCRIPTION
            or is_standard_only()
            or not _plain_results(self.schema)
        ):
            return
        plan = self._events_plan()
        if plan is not None:
            lead.build = plan.data

    def execute_operation(self, serially: bool | None = None) -> Any:
        plan = self._plan() if serially is None else None
        if plan is None:
            return self._standard(serially)
        return self._fast(plan)

    def _plan(self) -> OperationPlan | None:
        context = self.context_value
        if (
            self.operation.operation is not OperationType.QUERY
            or is_standard_only()
            or not isinstance(context, Context)
            or not _batches(context)
        ):
            return None
        return plans_of(self.schema).plan(
            self.schema, self.fragments, self.variable_values, self.operation
        )

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        """What executes one event of a subscription: graphql-core copies this executor for
        each; an event the plan covers is built at once instead, with no copy."""
        plan = self._events_plan()
        if plan is None or is_standard_only():
            return super().build_per_event_executor(payload)
        try:
            data = plan.data(payload)
        except Exception:  # a value the plan does not write as the standard executor would
            log.debug("an event's plan declined it", exc_info=True)
            data = None
        if data is None:
            return super().build_per_event_executor(payload)
        return cast("Executor[Any]", _Built(ExecutionResult(data, None)))

    def _events_plan(self) -> EventPlan | None:
        """The plan of this subscription's events, found once per subscription."""
        if not self._event_planned:
            self._event_planned = True
            if self.operation.operation is OperationType.SUBSCRIPTION:
                self._event_plan = plans_of(self.schema).event(
                    self.schema, self.fragments, self.variable_values, self.operation
                )
        return self._event_plan

    def _standard(self, serially: bool | None = None) -> Any:
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            record(STANDARD)
        return super().execute_operation(serially)

    async def _fast(self, plan: OperationPlan) -> ExecutionResult:
        context = self.context_value
        arguments = Arguments(self.schema, self.variable_values, self.hide_suggestions)
        try:
            result = await run_plan(plan, context.database, context.org_id, arguments)
        except DECLINED as reason:  # the standard path reports those
            log.debug("fast path declined: %s", reason)
            return await self._awaited(self._standard())
        except Exception:  # a fault of the fast path's own: the standard path still answers
            log.warning("fast path failed; the standard executor answers", exc_info=True)
            return await self._awaited(self._standard())
        record(FAST)
        return result

    @staticmethod
    async def _awaited(result: Any) -> ExecutionResult:
        if isinstance(result, ExecutionResult):
            return result
        awaited: ExecutionResult = await result
        return awaited
