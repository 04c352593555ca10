"""Schema extensions: error codes and masking, and SQL statistics in development."""

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types.execution import StreamExecutionResult

from runql.errors import RunqlError
from runql.operations.requests import current_request_id
from runql.security.operation import unresolved_error
from runql.storage.database import StatementCount, counting_statements

log = logging.getLogger("runql.errors")

INTERNAL_MESSAGE = "Internal server error"


def _user_error(error: GraphQLError, original: RunqlError) -> GraphQLError:
    extensions: dict[str, Any] = {"code": original.code}
    if original.field is not None:
        extensions["field"] = original.field
    return GraphQLError(
        original.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def _masked(error: GraphQLError) -> GraphQLError:
    error_id = uuid.uuid4().hex
    log.error("unexpected error %s at %s", error_id, error.path, exc_info=error.original_error)
    extensions = {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id}
    request_id = current_request_id()  # set by the edge (runql/edge.py); the logs carry it too
    if request_id is not None:
        extensions["requestId"] = request_id
    return GraphQLError(
        INTERNAL_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


def coded(error: GraphQLError) -> GraphQLError:
    """The error as a client should see it: with a code, and masked if nobody expected it."""
    original = error.original_error
    if isinstance(original, RunqlError):
        return _user_error(error, original)
    if isinstance(original, CannotGetOperationTypeError):
        return unresolved_error(error, original)
    if error.path is not None and original is not None and not isinstance(original, GraphQLError):
        return _masked(error)
    if (error.extensions or {}).get("code"):
        return error
    if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        return _with_code(error, "GRAPHQL_PARSE_FAILED")
    if original is not None and not isinstance(original, (GraphQLError, ValueError)):
        return _masked(error)
    return _with_code(error, "BAD_USER_INPUT")  # variables: scalars refuse them with ValueError


class ErrorCodes(SchemaExtension):
    """Every error gets `extensions.code`; unexpected ones are masked and logged with an id.

    List it first: it must wrap the other extensions, whose parse errors escape as exceptions.
    """

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            raise coded(error) from None
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [coded(error) for error in result.errors]

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or []:
            if not (error.extensions or {}).get("code"):  # a limit's QUERY_TOO_COMPLEX stays
                _with_code(error, "GRAPHQL_VALIDATION_FAILED")

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """Each result of a subscription, as it is sent."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [coded(error) for error in errors]  # type: ignore[union-attr]
        yield


class SqlStatistics(SchemaExtension):
    """`extensions.sql`: how many statements the operation ran and how long they took."""

    _count: StatementCount | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        async with counting_statements() as count:
            self._count = count
            yield

    def get_results(self) -> dict[str, Any]:
        if self._count is None:
            return {}
        return {
            "sql": {
                "statements": self._count.statements,
                "ms": round(self._count.seconds * 1000, 3),
            }
        }
