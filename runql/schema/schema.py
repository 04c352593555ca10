"""The schema, built once per process."""

from functools import cache

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig

from runql.schema import types
from runql.schema.extensions import ErrorCodes, SqlStatistics
from runql.schema.query import Query
from runql.schema.scalars import SCALARS

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


@cache
def build_schema(*, development: bool = False) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        types=ALL_TYPES,
        extensions=_extensions(development=development),
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
