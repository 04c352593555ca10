"""The schema, built once per process."""

from collections.abc import Iterable
from functools import cache
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from runql.fastpath.executor import FastExecutor
from runql.fastpath.report import ExecutorReport
from runql.operations.extension import ObserveOperations
from runql.schema import types
from runql.schema.execution import StandardExecutor
from runql.schema.extensions import ErrorCodes, SqlStatistics
from runql.schema.mutation import Mutation
from runql.schema.query import Query
from runql.schema.scalars import SCALARS
from runql.schema.subscription import Subscription
from runql.security.extension import QueryLimits
from runql.security.operation import SpecExecutionContext
from runql.security.parsing import QuietParserCache
from runql.security.text_input import FitText
from runql.security.timeout import ExecutionTimeout
from runql.settings import Settings

ALL_TYPES = [
    types.Run,
    types.Agent,
    types.Thread,
    types.MessageGroup,
    types.Message,
    types.Actor,
    types.MessageContent,
    types.ContentPart,
    types.Attachment,
    types.AttachedItem,
    types.RunError,
]


def _extensions(*, development: bool) -> list[type[SchemaExtension]]:
    extensions: list[type[SchemaExtension]] = [
        ObserveOperations,  # metrics and spans; around ErrorCodes, so it sees coded errors
        ErrorCodes,
        QueryLimits,  # depth, aliases, tokens, cost, introspection: runql.security
        FitText,  # runql.text's rule on variables and literals, before anything runs
        ExecutionTimeout,
        QuietParserCache,  # ParserCache whose parse errors are results on websockets too
        ValidationCache,
    ]
    if development:
        extensions.append(SqlStatistics)
        extensions.append(ExecutorReport)  # extensions.executor: "fast" or "standard"
    return extensions


class Schema(strawberry.Schema):
    def _create_execution_context(
        self,
        query: str | None,
        allowed_operation_types: Iterable[OperationType],
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionContext:
        """Every transport's operations pick theirs as the spec says (runql.security.operation)."""
        return SpecExecutionContext(
            query=query,
            schema=self,
            allowed_operations=allowed_operation_types,
            context=context_value,
            root_value=root_value,
            variables=variable_values,
            provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client errors are the client's business; ErrorCodes logs the unexpected ones."""


@cache
def build_schema(*, development: bool = False, fastpath: bool = True) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=ALL_TYPES,
        extensions=_extensions(development=development),
        config=StrawberryConfig(scalar_map=SCALARS),
        # Queries the planner covers run on runql.fastpath; the rest on graphql-core's executor.
        execution_context_class=FastExecutor if fastpath else StandardExecutor,
    )


def schema_for(settings: Settings) -> strawberry.Schema:
    """The schema these settings serve (one per development flag and RUNQL_FASTPATH)."""
    return build_schema(development=settings.is_development, fastpath=settings.fastpath)


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
