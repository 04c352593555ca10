"""Prepared operations for the fast lane: a document and operation name, parsed with the token
limit and validated with the very rules of the standard pipeline, once.

Only a query that parses, selects one operation and validates without an error is prepared;
anything else is remembered as "not for the lane" (None), and the standard view answers it,
errors included. Bounded: the most recently used MAX_PREPARED, and no document longer than
MAX_DOCUMENT_CHARS (those go to the standard view, unremembered).
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import VariableValues, VariableValueSource
from graphql.pyutils import Undefined
from graphql.type import GraphQLNonNull, GraphQLScalarType
from strawberry.schema.schema import validate_document

from runql.limits import Limits
from runql.security.rules import validation_rules
from runql.security.text_input import fit_document

MAX_PREPARED = 512
MAX_DOCUMENT_CHARS = 100_000
Key = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Scalar:
    """A variable of a scalar type without a default, and its type's coercion (that of
    graphql-core's coerce_input_value for a leaf type), taken once."""

    signature: GraphQLVariableSignature
    non_null: bool
    coerce: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Prepared:
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    name: str | None  # the operation's name, as its metrics and access log give it
    scalars: tuple[Scalar, ...] | None  # see scalar_variables

    def variables(self, inputs: dict[str, Any]) -> VariableValues | None:
        """The variables coerced as graphql-core's get_variable_values coerces them, where
        they are all scalars without defaults; None (the full coercion decides) otherwise,
        and for any value that is missing where required or does not coerce."""
        if self.scalars is None:
            return None
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for scalar in self.scalars:
            name = scalar.signature.name
            value = inputs.get(name, Undefined)
            if value is Undefined or value is None:
                if scalar.non_null:
                    return None
                if value is Undefined:
                    sources[name] = VariableValueSource(scalar.signature)
                    continue
                sources[name], coerced[name] = VariableValueSource(scalar.signature, None), None
                continue
            sources[name] = VariableValueSource(scalar.signature, value)
            try:
                found = scalar.coerce(value)
            except Exception:  # as coerce_input_value: not a value of the type
                return None
            if found is Undefined:
                return None
            coerced[name] = found
        return VariableValues(sources, coerced)


def scalar_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
) -> tuple[Scalar, ...] | None:
    """The operation's variables, if each is a scalar (or non-null scalar) without a default:
    their coercion is the scalar's own, with no nesting or default to apply."""
    found = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if not isinstance(signature, GraphQLVariableSignature) or signature.default is not None:
            return None
        non_null = isinstance(signature.type, GraphQLNonNull)
        named = signature.type.of_type if non_null else signature.type  # type: ignore[union-attr]
        if not isinstance(named, GraphQLScalarType):
            return None
        found.append(Scalar(signature, non_null, named.coerce_input_value))
    return tuple(found)


def _operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation to run: the named one, or else the only one (several without a name is
    a request error: runql.security.operation, which the view reports)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next(
        (o for o in operations if o.name is not None and o.name.value == operation_name), None
    )


def _fragments(document: DocumentNode) -> dict[str, FragmentDetails] | None:
    """The document's fragments; None where one declares variables (experimental)."""
    definitions = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    if any(d.variable_definitions for d in definitions):
        return None
    return {d.name.value: FragmentDetails(d) for d in definitions}


def _name(operation: OperationDefinitionNode, operation_name: str | None) -> str | None:
    if operation_name is not None:
        return operation_name
    return operation.name.value if operation.name is not None else None


def prepare(
    schema: GraphQLSchema, limits: Limits, document: str, operation_name: str | None
) -> Prepared | None:
    """The query prepared, or None if it is no query, or would not run without an error."""
    try:
        parsed = parse(document, max_tokens=limits.max_tokens)
    except GraphQLError:
        return None
    operation = _operation(parsed, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    fragments = _fragments(parsed)
    rules = (*specified_rules, *validation_rules(limits))
    if (
        fragments is None
        or validate_document(schema, parsed, rules)
        or not fit_document(document, parsed)
    ):  # the view names the unfit literal
        return None
    return Prepared(
        operation, fragments, _name(operation, operation_name), scalar_variables(schema, operation)
    )


class PreparedOperations:
    def __init__(self, schema: GraphQLSchema, limits: Limits, maxsize: int = MAX_PREPARED) -> None:
        self._schema = schema
        self._limits = limits
        self._maxsize = maxsize
        self._prepared: OrderedDict[Key, Prepared | None] = OrderedDict()

    def get(self, document: str, operation_name: str | None) -> Prepared | None:
        if len(document) > MAX_DOCUMENT_CHARS:
            return None
        key = (document, operation_name)
        if key in self._prepared:
            self._prepared.move_to_end(key)
            return self._prepared[key]
        found = self._prepared[key] = prepare(self._schema, self._limits, document, operation_name)
        if len(self._prepared) > self._maxsize:
            self._prepared.popitem(last=False)
        return found
