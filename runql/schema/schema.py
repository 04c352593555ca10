"""The schema: the run graph's types, queries, mutations and subscriptions. What serves it
(extensions, the executor) is composed in runql.served_schema, which imports this module; this
module imports neither the fast path nor what observes and limits operations."""

from collections.abc import Iterable
from functools import cache
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from runql.schema import types
from runql.schema.execution import StandardExecutor
from runql.schema.mutation import Mutation
from runql.schema.query import Query
from runql.schema.scalars import SCALARS
from runql.schema.subscription import Subscription
from runql.security.operation import SpecExecutionContext

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


def make_schema(
    extensions: list[type[SchemaExtension]],
    execution_context_class: type[StandardExecutor] = StandardExecutor,
) -> strawberry.Schema:
    """The run graph's schema with these extensions, executed by this execution context class
    (graphql-core's executor by default). runql.served_schema picks what runql serves."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=ALL_TYPES,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=execution_context_class,
    )


@cache
def schema_sdl() -> str:
    """The schema's SDL, as schema.graphql holds it (extensions and executors change none)."""
    return make_schema([]).as_str() + "\n"
