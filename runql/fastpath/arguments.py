"""A field's arguments as its resolver would receive them, checked once per execution.

graphql-core coerces the literals and variables (get_argument_values), strawberry converts them
to Python (input types, enums, python names), as for the standard resolvers; the check is the
resolver's own (page_request, checked_filter, require), so errors are the very same.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from graphql import FieldNode, GraphQLError, GraphQLField, GraphQLSchema
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.types.arguments import convert_arguments

from runql.errors import RunqlError
from runql.fastpath.unsupported import Fallback

T = TypeVar("T")
Check = Callable[..., T]


class Arguments:
    def __init__(self, schema: GraphQLSchema, variables: VariableValues,
                 hide_suggestions: bool = False) -> None:
        strawberry_schema = schema._strawberry_schema  # type: ignore[attr-defined]
        self._scalars = strawberry_schema.schema_converter.scalar_registry
        self._config = strawberry_schema.config
        self._variables = variables
        self._hide_suggestions = hide_suggestions
        self._checked: dict[object, Any] = {}

    def of(self, field: GraphQLField, node: FieldNode) -> dict[str, Any]:
        """Python keyword arguments, as strawberry passes them to the field's resolver."""
        try:
            raw = get_argument_values(field, node, self._variables,
                                      hide_suggestions=self._hide_suggestions)
            definition = field.extensions["strawberry-definition"]
            return convert_arguments(raw, definition.arguments, scalar_registry=self._scalars,
                                     config=self._config)
        except (GraphQLError, ValueError, TypeError) as error:
            raise Fallback(f"arguments the standard path reports itself: {error}") from error

    def checked(self, owner: object, field: GraphQLField, node: FieldNode,
                check: Check[T]) -> T | RunqlError:
        """`check(**arguments)` once per owner (a plan's field): its value or its RunqlError."""
        if owner in self._checked:
            found: T | RunqlError = self._checked[owner]
            return found
        try:
            result: T | RunqlError = check(**self.of(field, node))
        except RunqlError as error:
            result = error
        self._checked[owner] = result
        return result
