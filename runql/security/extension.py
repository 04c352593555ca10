"""The query limits as a schema extension: a token cap on parsing, the depth, alias and cost
rules (and no introspection, where it is off) on validation, and errors that say which limit."""

from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import StreamExecutionResult

from runql.limits import Limits, limits_of
from runql.security.errors import too_complex
from runql.security.rules import validation_rules
from runql.security.suggestions import without_suggestions


def _is_token_limit(error: GraphQLError, max_tokens: int) -> bool:
    return (
        isinstance(error, GraphQLSyntaxError) and f"more than {max_tokens} tokens" in error.message
    )


def _tokens_error(error: GraphQLError, max_tokens: int) -> GraphQLError:
    coded = too_complex(
        f"The document has more than {max_tokens} tokens; at most {max_tokens} are allowed.",
        "tokens",
        max_tokens,
    )
    return GraphQLError(
        coded.message, source=error.source, positions=error.positions, extensions=coded.extensions
    )


def relabelled(error: GraphQLError, limits: Limits) -> GraphQLError:
    if _is_token_limit(error, limits.max_tokens):
        return _tokens_error(error, limits.max_tokens)
    return error if limits.introspection else without_suggestions(error)


class QueryLimits(SchemaExtension):
    """List it after ErrorCodes, which then leaves the codes given here alone."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        limits = limits_of(context.context)
        context.parse_options["max_tokens"] = limits.max_tokens
        context.validation_rules = (*context.validation_rules, *validation_rules(limits))
        try:
            yield
        except GraphQLError as error:
            raise relabelled(error, limits) from None
        result = context.result
        if result is not None and result.errors:
            result.errors = [relabelled(error, limits) for error in result.errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """Each result of an operation over websockets, as it is sent."""
        errors = getattr(result, "errors", None)
        if errors:
            limits = limits_of(self.execution_context.context)
            result.errors = [relabelled(error, limits) for error in errors]  # type: ignore[union-attr]
        yield
