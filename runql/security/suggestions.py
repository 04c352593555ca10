"""Errors without "Did you mean …?": suggestions spell out the schema introspection hides."""

import re

from graphql import GraphQLError

_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")  # suggested names hold no "?"


def without_suggestions(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(
        message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        error.extensions,
    )
