"""A field's arguments as its resolver would receive them, checked once per execution.

graphql-core coerces the literals and variables (get_argument_values), strawberry converts them
to Python (input types, enums, python names), as for the standard resolvers; the check is the
resolver's own (page_request, checked_filter, require), so errors are the very same.
"""

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
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


def _variables_in(value: ValueNode) -> Iterator[str]:
    if isinstance(value, VariableNode):
        yield value.name.value
    elif isinstance(value, ListValueNode):
        for item in value.values:
            yield from _variables_in(item)
    elif isinstance(value, ObjectValueNode):
        for found in value.fields:
            yield from _variables_in(found.value)


_names: OrderedDict[int, tuple[FieldNode, tuple[str, ...]]] = OrderedDict()


def variables_of(node: FieldNode) -> tuple[str, ...]:
    """The variables a field node's arguments name, once per node."""
    found = _names.get(id(node))
    if found is None or found[0] is not node:
        named = (
            name for argument in node.arguments or () for name in _variables_in(argument.value)
        )
        found = _names[id(node)] = (node, tuple(dict.fromkeys(named)))
        if len(_names) > MAX_SHAPES:
            _names.popitem(last=False)
    return found[1]


# Arguments converted the full way, by _converted_key: a feed's `runs(first: $first, after:
# $after)` leaves its other arguments to their defaults, which `of`'s shortcut does not take,
# and strawberry's conversion was 4% of the plan's Python a request.
_converted: OrderedDict[Hashable, tuple[GraphQLField, FieldNode, dict[str, Any]]] = OrderedDict()


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
        key = self._converted_key(field, node)
        seen = None if key is None else _converted.get(key)
        if seen is not None and seen[0] is field and seen[1] is node:
            _converted.move_to_end(key)
            return dict(seen[2])
        try:
            raw = get_argument_values(
                field, node, self._variables, hide_suggestions=self._hide_suggestions
            )
            definition = field.extensions["strawberry-definition"]
            converted = convert_arguments(
                raw, definition.arguments, scalar_registry=self._scalars, config=self._config
            )
        except (GraphQLError, ValueError, TypeError) as error:
            raise Fallback(f"arguments the standard path reports itself: {error}") from error
        if key is not None:
            _converted[key] = (field, node, dict(converted))
            if len(_converted) > MAX_SHAPES:
                _converted.popitem(last=False)
        return converted

    def _converted_key(self, field: GraphQLField, node: FieldNode) -> Hashable | None:
        """What the conversion of the node's arguments depends on: the field, the node (its
        literals and defaults) and the values of the variables it names; None where a value
        is not hashable (an input object, a list)."""
        values = self._variables.coerced
        key = (
            id(field),
            id(node),
            # each value with its type: 1, 1.0 and True are equal keys, not equal arguments
            tuple(
                (type(value), value)
                for value in (values.get(name, _MISSING) for name in variables_of(node))
            ),
        )
        try:
            hash(key)
        except TypeError:
            return None
        return key

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
