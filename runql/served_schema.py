"""The schema as runql serves it: runql.schema's schema with the extensions that observe,
limit and report operations, executed by the fast path (runql.fastpath) unless RUNQL_FASTPATH
turns it off. The one place where the schema and the fast path meet: the fast path plans
from the schema and the schema knows nothing of it."""

from functools import cache

import strawberry
from strawberry.extensions import SchemaExtension, ValidationCache

from runql.fastpath.executor import FastExecutor
from runql.fastpath.report import ExecutorReport
from runql.operations.extension import ObserveOperations
from runql.schema.execution import StandardExecutor
from runql.schema.extensions import ErrorCodes, SqlStatistics
from runql.schema.schema import make_schema
from runql.security.extension import QueryLimits
from runql.security.parsing import QuietParserCache
from runql.security.text_input import FitText
from runql.security.timeout import ExecutionTimeout
from runql.settings import Settings


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


@cache
def build_schema(*, development: bool = False, fastpath: bool = True) -> strawberry.Schema:
    # Queries the planner covers run on runql.fastpath; the rest on graphql-core's executor.
    executor = FastExecutor if fastpath else StandardExecutor
    return make_schema(_extensions(development=development), executor)


def schema_for(settings: Settings) -> strawberry.Schema:
    """The schema these settings serve (one per development flag and RUNQL_FASTPATH)."""
    return build_schema(development=settings.is_development, fastpath=settings.fastpath)
