"""ObserveOperations: each GraphQL operation's metrics (name, type, outcome, time, SQL
statements), its name in the request's record for the access log, active subscriptions, and
its span when tracing is on. It is listed before ErrorCodes, so it sees errors with codes."""

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from runql.operations import metrics, tracing
from runql.operations.requests import CURRENT_REQUEST, current_request

if TYPE_CHECKING:
    from opentelemetry.trace import Span

SUCCESS = "success"
CLIENT_ERROR = "client_error"
SERVER_ERROR = "server_error"
UNKNOWN = "unknown"


def outcome_of(errors: Sequence[GraphQLError] | None) -> str:
    if not errors:
        return SUCCESS
    codes = {(error.extensions or {}).get("code") for error in errors}
    return SERVER_ERROR if "INTERNAL_SERVER_ERROR" in codes else CLIENT_ERROR


def operation_kind(context: ExecutionContext) -> str:
    try:
        return context.operation_type.value
    except Exception:  # not parsed, or no such operation: the errors say why
        return UNKNOWN


def _operation(context: ExecutionContext) -> OperationDefinitionNode | None:
    document = context.graphql_document
    name = context.operation_name
    for definition in document.definitions if document is not None else ():
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def subscription_field(context: ExecutionContext) -> str | None:
    """The root field a subscription operation subscribes to, such as runStatus."""
    if operation_kind(context) != "subscription":
        return None
    operation = _operation(context)
    selections = operation.selection_set.selections if operation is not None else ()
    return next((s.name.value for s in selections if isinstance(s, FieldNode)), UNKNOWN)


def observed(
    span: "Span | None", kind: str, name: str | None, outcome: str, seconds: float, statements: int
) -> None:
    """An operation that ended: its name in the request's record, its span, its metrics."""
    record = CURRENT_REQUEST.get()
    if record is not None:
        record.operation = name
    if span is not None:
        tracing.describe_operation(span, kind, name, outcome)
    metrics.observe_operation(metrics.operation_label(name), kind, outcome, seconds, statements)


class ObserveOperations(SchemaExtension):
    _subscription: str | None = None

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        record = current_request()
        statements_before = record.statements if record is not None else 0
        outcome = SUCCESS
        with tracing.operation_span() as span:
            try:
                yield
            except GraphQLError as error:
                outcome = outcome_of([error])
                raise
            except Exception:
                outcome = SERVER_ERROR
                raise
            else:
                result = self.execution_context.result
                outcome = outcome_of(result.errors if result is not None else None)
            finally:
                self._finish(
                    span,
                    outcome,
                    time.perf_counter() - started,
                    (record.statements - statements_before) if record else 0,
                )

    def on_execute(self) -> Iterator[None]:
        field = subscription_field(self.execution_context)
        shared_stream = getattr(self.execution_context.context, "lead", None) is not None
        if field is not None and not shared_stream:  # count clients, not shared executions
            metrics.subscription_started(field)
            self._subscription = field
        yield

    def _finish(self, span: "Span | None", outcome: str, seconds: float, statements: int) -> None:
        context = self.execution_context
        observed(
            span, operation_kind(context), context.operation_name, outcome, seconds, statements
        )
        if self._subscription is not None:
            metrics.subscription_ended(self._subscription)
