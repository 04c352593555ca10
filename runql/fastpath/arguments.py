"""A field's arguments as its resolver would receive them, checked once per execution.

graphql-core coerces the literals and variables (get_argument_values), strawberry converts them
to Python (input types, enums, python names), as for the standard resolvers; the check is the
resolver's own (page_request, checked_filter, require), so errors are the very same.
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    VariableNode,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.relay.types import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryMaybe, StrawberryOptional

from runql.errors import RunqlError
from runql.fastpath.unsupported import Fallback

T = TypeVar("T")
Check = Callable[..., T]
# (python name, variable name, non-null) of each argument a field node gives as a variable
Passed = tuple[tuple[str, str, bool], ...]
MAX_SHAPES = 4096
_MISSING = object()

_passed: OrderedDict[tuple[int, int], tuple[GraphQLField, FieldNode, Passed | None]] = OrderedDict()


def _as_passed(field: GraphQLField, node: FieldNode, config: StrawberryConfig) -> Passed | None:
    """The arguments as plain variables of scalar types, which graphql-core coerces to the
    variable's own value and strawberry passes unchanged; None where any argument is more (a
    literal, an input object, an enum, a list, a default to apply): those go the full way."""
    definition = field.extensions["strawberry-definition"]
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    passed = []
    for argument in definition.arguments:
        name = config.name_converter.from_argument(argument)
        graphql_argument = field.args.get(name)
        value = given.pop(name, None)
        if graphql_argument is None or not isinstance(value, VariableNode):
            return None
        argument_type = graphql_argument.type
        non_null = isinstance(argument_type, GraphQLNonNull)
        scalar = (
            argument_type.of_type if isinstance(argument_type, GraphQLNonNull) else argument_type
        )
        python_type = argument.type
        if isinstance(python_type, StrawberryOptional) and not isinstance(
            python_type, StrawberryMaybe
        ):
            python_type = python_type.of_type
        if (
            not isinstance(scalar, GraphQLScalarType)
            or isinstance(python_type, StrawberryMaybe)
            or python_type is GlobalID
        ):
            return None
        passed.append((argument.python_name, value.name.value, non_null))
    return tuple(passed) if not given else None


def passed_variables(
    field: GraphQLField, node: FieldNode, config: StrawberryConfig
) -> Passed | None:
    """_as_passed, once per field node."""
    key = (id(field), id(node))
    found = _passed.get(key)
    if found is None or found[0] is not field or found[1] is not node:
        found = _passed[key] = (field, node, _as_passed(field, node, config))
        if len(_passed) > MAX_SHAPES:
            _passed.popitem(last=False)
    return found[2]


class Arguments:
    def __init__(
        self, schema: GraphQLSchema, variables: VariableValues, hide_suggestions: bool = False
    ) -> None:
        strawberry_schema = schema._strawberry_schema  # type: ignore[attr-defined]
        self._scalars = strawberry_schema.schema_converter.scalar_registry
        self._config = strawberry_schema.config
        self._variables = variables
        self._hide_suggestions = hide_suggestions
        self._checked: dict[object, Any] = {}

    def of(self, field: GraphQLField, node: FieldNode) -> dict[str, Any]:
        """Python keyword arguments, as strawberry passes them to the field's resolver."""
        passed = passed_variables(field, node, self._config)
        if passed is not None:  # (a loop, not a generator and a comprehension: per request)
            values = self._variables.coerced
            found: dict[str, Any] = {}
            for name, variable, non_null in passed:
                value = values.get(variable, _MISSING)
                if value is _MISSING or (value is None and non_null):
                    break
                found[name] = value
            else:
                return found
        try:
            raw = get_argument_values(
                field, node, self._variables, hide_suggestions=self._hide_suggestions
            )
            definition = field.extensions["strawberry-definition"]
            return convert_arguments(
                raw, definition.arguments, scalar_registry=self._scalars, config=self._config
            )
        except (GraphQLError, ValueError, TypeError) as error:
            raise Fallback(f"arguments the standard path reports itself: {error}") from error

    def checked(
        self, owner: object, field: GraphQLField, node: FieldNode, check: Check[T]
    ) -> T | RunqlError:
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
