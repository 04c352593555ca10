"""The mutation lane: createRun from the request's bytes to the response's bytes, past
strawberry's view, as the fast lane (runql/fastpath/lane.py) serves queries.

A document is taken once, parsed with the token limit and validated with the standard
pipeline's rules (runql.security.rules), if it is one mutation whose only root field is
`createRun(input: ...)` selecting `__typename` and `run { ... }` with the run's own scalar
fields (no resolver of their own: id, status, createdAt, metadata, ...), without fragments,
directives or repeated response keys. Anything else is left to the view (None).

Per request: the variables coerced by graphql-core as the executor coerces them, the argument
read as the executor reads it, the lifecycle's create_run called directly, the run's fields
serialized by the schema's own scalar and enum types, the body encoded with orjson. The
operation is recorded as ObserveOperations records it (metrics, span, the access log's name).

A refusal (a bad agent, an unfit value, an idempotency conflict) writes nothing, so the lane
declines it and the view runs the mutation again, reporting the refusal with its code and field
as it always does. An operation that runs out of time raises LaneTimeout: its create is either
never taken into a batch (then nothing is written) or committed with its batch, as on the view.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    specified_rules,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.schema.base import BaseSchema
from strawberry.schema.schema import validate_document

from runql.fastpath.lane import LaneTimeout
from runql.fastpath.switch import is_standard_only
from runql.lifecycle.runs import create_run
from runql.limits import Limits
from runql.operations import tracing
from runql.operations.extension import SUCCESS, observed
from runql.operations.requests import current_request
from runql.resolvers.mutations import graphql_names, run_request_of
from runql.security.rules import validation_rules
from runql.security.text_input import fit_document, fit_variables
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import RunRow

log = logging.getLogger("runql.mutation_lane")

MAX_SHAPES = 256
MAX_DOCUMENT_CHARS = 20_000
MAX_COERCION_ERRORS = 50  # graphql-core's, as the standard executor coerces variables
MUTATION = "mutation"
ROOT_FIELD = "createRun"
TYPENAME = "__typename"

Serialize = Callable[[Any], Any]
RunField = tuple[str, str | None, Serialize | None]  # response key, row attribute, serializer


@dataclass(frozen=True, slots=True)
class Shape:
    """A createRun document the lane serves: what to coerce and what to answer."""

    operation: OperationDefinitionNode
    field: GraphQLField
    node: FieldNode
    name: str | None  # the operation's, as metrics and the access log give it
    key: str  # createRun's response key
    payload: tuple[tuple[str, tuple[RunField, ...] | None], ...]  # None: __typename
    payload_type: str

    def body(self, run: RunRow) -> bytes:
        payload: dict[str, Any] = {}
        for key, fields in self.payload:
            payload[key] = self.payload_type if fields is None else _run(run, fields)
        return orjson.dumps({"data": {self.key: payload}})


def _run(run: RunRow, fields: tuple[RunField, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, attribute, serialize in fields:
        if attribute is None:
            found[key] = "Run"
            continue
        value = getattr(run, attribute)
        found[key] = None if value is None or serialize is None else serialize(value)
    return found


def _plain(selections: SelectionSetNode | None) -> list[FieldNode] | None:
    """The selection's fields, if each is a field without directives or arguments and no two
    share a response key; None otherwise (fragments and the like are the view's)."""
    if selections is None:
        return None
    fields = []
    for selection in selections.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        fields.append(selection)
    keys = [(f.alias or f.name).value for f in fields]
    return fields if len(set(keys)) == len(keys) else None


def _run_fields(run_type: GraphQLObjectType, node: FieldNode) -> tuple[RunField, ...] | None:
    fields = _plain(node.selection_set)
    if not fields:
        return None
    found: list[RunField] = []
    for field in fields:
        key, name = (field.alias or field.name).value, field.name.value
        if name == TYPENAME:
            found.append((key, None, None))
            continue
        definition = run_type.fields.get(name)
        strawberry_field = (
            definition.extensions.get("strawberry-definition") if definition else None
        )
        if definition is None or strawberry_field is None or strawberry_field.base_resolver:
            return None  # a field with a resolver of its own (agent, thread, cost, ...)
        output = definition.type
        named = output.of_type if isinstance(output, GraphQLNonNull) else output
        serialize = getattr(named, "serialize", None)
        if serialize is None or field.selection_set is not None:
            return None
        found.append((key, strawberry_field.python_name, serialize))
    return tuple(found)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != len(document.definitions):
        return None  # fragments: the view's
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def shape_of(
    schema: GraphQLSchema, limits: Limits, document: str, operation_name: str | None
) -> Shape | None:
    """The createRun document as the lane serves it, or None (the view's)."""
    if ROOT_FIELD not in document:
        return None
    try:
        parsed = parse(document, max_tokens=limits.max_tokens)
    except GraphQLError:
        return None
    operation = _operation(parsed, operation_name)
    mutation_type = schema.mutation_type
    if operation is None or operation.operation is not OperationType.MUTATION:
        return None
    roots = operation.selection_set.selections
    if mutation_type is None or operation.directives or len(roots) != 1:
        return None
    [root] = roots
    if not isinstance(root, FieldNode) or root.name.value != ROOT_FIELD or root.directives:
        return None
    if root.selection_set is None:
        return None
    rules = (*specified_rules, *validation_rules(limits))
    if validate_document(schema, parsed, rules) or not fit_document(document, parsed):
        return None
    field = mutation_type.fields[ROOT_FIELD]
    payload_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    run_type = schema.type_map["Run"]
    assert isinstance(payload_type, GraphQLObjectType)
    assert isinstance(run_type, GraphQLObjectType)
    payload: list[tuple[str, tuple[RunField, ...] | None]] = []
    for selection in root.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        key = (selection.alias or selection.name).value
        if selection.name.value == TYPENAME:
            payload.append((key, None))
            continue
        fields = _run_fields(run_type, selection) if selection.name.value == "run" else None
        if fields is None:
            return None
        payload.append((key, fields))
    keys = [key for key, _ in payload]
    if len(set(keys)) != len(keys):
        return None
    name = operation_name or (operation.name.value if operation.name else None)
    return Shape(
        operation,
        field,
        root,
        name,
        (root.alias or root.name).value,
        tuple(payload),
        payload_type.name,
    )


class MutationLane:
    def __init__(self, schema: GraphQLSchema, database: Database, settings: Settings) -> None:
        self._schema = schema
        self._database = database
        self._settings = settings
        self._limits = Limits.from_settings(settings)
        self._shapes: OrderedDict[tuple[str, str | None], Shape | None] = OrderedDict()
        self.served = 0  # requests the lane answered

    @classmethod
    def of(cls, schema: BaseSchema, database: Database, settings: Settings) -> "MutationLane":
        assert isinstance(schema, strawberry.Schema)
        return cls(schema._schema, database, settings)

    def _shape(self, document: str, operation_name: str | None) -> Shape | None:
        if len(document) > MAX_DOCUMENT_CHARS:
            return None
        key = (document, operation_name)
        if key in self._shapes:
            self._shapes.move_to_end(key)
            return self._shapes[key]
        found = self._shapes[key] = shape_of(self._schema, self._limits, document, operation_name)
        if len(self._shapes) > MAX_SHAPES:
            self._shapes.popitem(last=False)
        return found

    async def answer(
        self, query: str | None, operation_name: str | None, variables: Any, org_id: str
    ) -> bytes | None:
        """The response body, or None: the standard view answers."""
        if query is None or is_standard_only():
            return None
        try:
            shape = self._shape(query, operation_name)
            if shape is None or not fit_variables(variables):
                return None
            arguments = self._arguments(shape, variables or {})
        except Exception:  # a fault of the lane's own: the view still answers
            log.warning("mutation lane failed; the standard view answers", exc_info=True)
            return None
        if arguments is None:
            return None
        return await self._observed(shape, arguments, org_id)

    def _arguments(self, shape: Shape, inputs: dict[str, Any]) -> dict[str, Any] | None:
        coerced = get_variable_values(
            self._schema,
            shape.operation.variable_definitions or (),
            inputs,
            max_errors=MAX_COERCION_ERRORS,
        )
        if isinstance(coerced, list):
            return None  # coercion errors: the view reports them
        try:
            return get_argument_values(shape.field, shape.node, coerced)
        except GraphQLError:
            return None

    async def _observed(self, shape: Shape, arguments: dict[str, Any], org_id: str) -> bytes | None:
        started = time.perf_counter()
        record = current_request()
        statements_before = record.statements if record is not None else 0
        with tracing.operation_span() as span:
            run = await self._create(arguments, org_id)
            if run is None:
                return None
            body = shape.body(run)
            statements = record.statements - statements_before if record is not None else 0
            observed(span, MUTATION, shape.name, SUCCESS, time.perf_counter() - started, statements)
        self.served += 1
        return body

    async def _create(self, arguments: dict[str, Any], org_id: str) -> RunRow | None:
        settings = self._settings
        deadline = asyncio.get_running_loop().time() + settings.execution_timeout_seconds
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                return await create_run(
                    self._database,
                    org_id,
                    run_request_of(arguments["input"]),
                    max_content_bytes=settings.max_content_bytes,
                    json_caps=settings.json_caps,
                    names=graphql_names,
                )
        except Exception:  # a refusal wrote nothing: the view runs it again and reports it
            if timeout.expired():
                raise LaneTimeout(deadline) from None
            return None
