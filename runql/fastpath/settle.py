"""Errors and nulls as graphql-core's executor leaves them.

A failed field is null where null may stand, else its parent is, and so on up to `data`
itself. As graphql-core's CollectedErrors, the first error to null a position is reported and
later errors under a nulled position are not.

The order of the errors is the order in which graphql-core's tasks record them: a field's own
error as its resolver fails, an error that must climb to a nullable ancestor some turns of the
event loop later, and nested fields after I/O. The fast path answers where that order follows
from the response alone: the failures of one field (at each of its parents, in response order),
or root fields that each fail where they stand (in document order). Any other mix of failures
goes to the standard executor, whose order it is.
"""

from typing import Any

from graphql import GraphQLError, located_error

from runql.fastpath.build import Failure, Path, as_list
from runql.fastpath.unsupported import Fallback

Position = tuple[str | int, ...]


def _nullable_position(path: Path) -> Position | None:
    """The position null goes to: the nearest one at or above `path` that may be null."""
    while path is not None:
        if path[2]:
            return tuple(as_list(path))
        path = path[0]
    return None


def _is_nulled(position: Position | None, nulled: set[Position], root: bool) -> bool:
    if root:
        return True
    if position is None:
        return False
    return any(position[:length] in nulled for length in range(1, len(position) + 1))


def _apply(data: dict[str, Any], position: Position) -> None:
    container: Any = data
    for key in position[:-1]:
        container = container[key]
        if container is None:
            return
    container[position[-1]] = None


def _in_place(failure: Failure) -> bool:
    """A root field that may be null: its error is recorded as its resolver fails."""
    return failure.path[2] and failure.path[0] is None


def _ordered(failures: list[Failure]) -> list[Failure]:
    fields = {id(failure.field) for failure in failures}
    if len(fields) > 1 and not all(_in_place(failure) for failure in failures):
        raise Fallback("errors of several fields, in an order the event loop decides")
    return failures


def settle(
    data: dict[str, Any], failures: list[Failure]
) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
    errors: list[GraphQLError] = []
    nulled: set[Position] = set()
    root = False
    for failure in _ordered(failures):
        position = _nullable_position(failure.path)
        if _is_nulled(position, nulled, root):
            continue
        errors.append(located_error(failure.error, list(failure.nodes), as_list(failure.path)))
        if position is None:
            root = True
        else:
            nulled.add(position)
    if root:
        return None, errors
    for position in sorted(nulled, key=len):
        _apply(data, position)
    return data, errors
