"""The schema, built once per process."""

from functools import cache

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from runql.schema import types
from runql.schema.extensions import ErrorCodes, SqlStatistics
from runql.schema.mutation import Mutation
from runql.schema.query import Query
from runql.schema.scalars import SCALARS
from runql.schema.subscription import Subscription

ALL_TYPES = [
    types.Run, types.Agent, types.Thread, types.MessageGroup, types.Message, types.Actor,
    types.MessageContent, types.ContentPart, types.Attachment, types.AttachedItem,
    types.RunError,
]


def _extensions(*, development: bool) -> list[type[SchemaExtension]]:
    extensions: list[type[SchemaExtension]] = [
        ErrorCodes,
        ParserCache,
        ValidationCache,
    ]
    if development:
        extensions.append(SqlStatistics)
    return extensions


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Client errors are the client's business; ErrorCodes logs the unexpected ones."""


@cache
def build_schema(*, development: bool = False) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=ALL_TYPES,
        extensions=_extensions(development=development),
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
