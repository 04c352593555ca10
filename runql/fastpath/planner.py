"""From an operation to a plan: graphql-core collects each selection set exactly as its executor
does (fragments, inline fragments on interfaces, aliases, merged fields, @include/@skip), and
each collected field becomes a plan field through model.py. Anything else is Unsupported.

It plans twice: the first pass finds the columns the operation reads of each table
(statements.Layouts), the second builds the plan on them.

A subscription's events are planned too (`plan_event`): when its root field's selection reads
nothing but the event object's own columns (leaves and composites, no link), an event's data is
built from the event's row alone, as the standard executor would write it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues
from sqlalchemy import Table, inspect

from runql.fastpath import connections, links, model, roots
from runql.fastpath.connections import Selected, Shape
from runql.fastpath.plan import Column, Embedded, Field, ObjectPlan, OperationPlan, Typename
from runql.fastpath.statements import Layouts
from runql.fastpath.unsupported import Unsupported
from runql.fastpath.values import Convert, decoded, leaf, required
from runql.ids import Kind
from runql.storage.graph import OBJECTS

if TYPE_CHECKING:
    from runql.fastpath.build import Builder

CONDITIONS = frozenset({"include", "skip"})
TYPENAME = "__typename"

_ROWS = {found.table.name: found.row for found in OBJECTS.values()}


def _mapper(table: Table) -> Any:
    return inspect(_ROWS[table.name])


def _column_of(type_model: model.TypeModel, python_name: str) -> Any:
    """The column the default resolver reads: the row's attribute of the field's python name."""
    mapper = _mapper(type_model.table)
    attribute = mapper.column_attrs.get(python_name)
    if attribute is None:
        raise Unsupported(f"{python_name} is not a column of {type_model.table.name}")
    return attribute.columns[0]


def _items_nullable(definition: GraphQLField) -> bool:
    listed = get_nullable_type(definition.type)
    return isinstance(listed, GraphQLList) and not is_non_null_type(listed.of_type)


class Planner:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
        types: Mapping[str, model.TypeModel] = model.TYPES,
        *,
        loaded: bool = False,
    ) -> None:
        # loaded: rows are ORM objects' attributes (a subscription's events), their JSON columns
        # already decoded, not the stored values the reads return
        self.loaded = loaded
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.operation = operation
        self.types = types
        self.layouts = Layouts()

    def plan(self) -> OperationPlan:
        self._plan()  # the columns each table's rows need
        self.layouts = self.layouts.fixed()
        return self._plan()

    def plan_event(self) -> "EventPlan":
        self._event()
        self.layouts = self.layouts.fixed()
        return self._event()

    def _event(self) -> "EventPlan":
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            raise Unsupported("queries and mutations are planned by `plan`")
        if self.operation.directives:
            raise Unsupported("directives on the operation")
        root = self.schema.subscription_type
        assert root is not None
        collected = collect_fields(
            self.schema, self.fragments, self.variables, root, self.operation
        )
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise Unsupported("@defer")
        if len(collected.grouped_field_set) != 1:
            raise Unsupported("a subscription has one root field")
        ((key, details),) = collected.grouped_field_set.items()
        name = self._nodes(details)[0].name.value
        named = get_named_type(self._definition(root, name).type)
        if not isinstance(named, GraphQLObjectType) or named.name not in self.types:
            raise Unsupported(f"Subscription.{name}")
        child = self._object(named.name, details)
        if child.fetching:
            raise Unsupported("a link below a subscription's event")
        table = self.types[named.name].table
        names = {
            attribute.columns[0].key: attribute.key for attribute in _mapper(table).column_attrs
        }
        attributes = tuple(names[column] for column in self.layouts.columns(table))
        return EventPlan(key, _ROWS[table.name], attributes, child)

    def _index(self, table: Table, name: str) -> int:
        return self.layouts.index(table, name)

    def _plan(self) -> OperationPlan:
        if self.operation.operation is not OperationType.QUERY:
            raise Unsupported("mutations and subscriptions run on the standard executor")
        if self.operation.directives:
            raise Unsupported("directives on the operation")
        query = self.schema.query_type
        assert query is not None
        collected = collect_fields(
            self.schema, self.fragments, self.variables, query, self.operation
        )
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise Unsupported("@defer")
        return OperationPlan(
            tuple(
                self._root(query, key, details)
                for key, details in collected.grouped_field_set.items()
            )
        )

    # -- fields ---------------------------------------------------------------------------

    def _nodes(self, details: FieldDetailsList) -> tuple[FieldNode, ...]:
        for detail in details:
            if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                raise Unsupported("@defer or fragment variables")
            if any(d.name.value not in CONDITIONS for d in detail.node.directives or ()):
                raise Unsupported("a directive other than @include and @skip")
        return tuple(detail.node for detail in details)

    def _definition(self, parent: GraphQLObjectType, name: str) -> GraphQLField:
        definition: GraphQLField | None = parent.fields.get(name)
        if definition is None:  # __schema, __type: introspection is the standard executor's
            raise Unsupported(f"{parent.name}.{name}")
        return definition

    def _root(self, query: GraphQLObjectType, key: str, details: FieldDetailsList) -> Field:
        nodes = self._nodes(details)
        name = nodes[0].name.value
        if name == TYPENAME:
            return Typename(key, query.name)
        definition = self._definition(query, name)
        nullable = not is_non_null_type(definition.type)
        if name in model.ROOT_OBJECTS:
            kind = model.ROOT_OBJECTS[name]
            type_name = model.NODE_TYPES[kind]
            table = model.TYPES[type_name].table
            child = self._object(type_name, details)
            return roots.RootObject(
                key, nodes, nullable, definition, kind, table, self.layouts.columns(table), child
            )
        if name in model.ROOT_LISTS:
            type_name, check = model.ROOT_LISTS[name]
            table = model.TYPES[type_name].table
            shape = self._shape(definition, details, type_name)
            return connections.RootList(
                key, nodes, nullable, definition, table, self.layouts.columns(table), check, shape
            )
        if name in ("node", "nodes"):
            plans = {
                kind: self._object(type_name, details)
                for kind, type_name in model.NODE_TYPES.items()
            }
            tables_ = {
                kind: model.TYPES[type_name].table for kind, type_name in model.NODE_TYPES.items()
            }
            return roots.RootNodes(
                key,
                nodes,
                nullable,
                definition,
                name == "nodes",
                _items_nullable(definition),
                tables_,
                {table: self.layouts.columns(table) for table in tables_.values()},
                plans,
            )
        raise Unsupported(f"Query.{name}")

    def _subfields(
        self, parent: GraphQLObjectType, details: FieldDetailsList
    ) -> dict[str, FieldDetailsList]:
        collected = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, parent, details
        )
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise Unsupported("@defer")
        return collected.grouped_field_set

    def _object(self, type_name: str, details: FieldDetailsList) -> ObjectPlan:
        parent = self.schema.get_type(type_name)
        if not isinstance(parent, GraphQLObjectType) or type_name not in self.types:
            raise Unsupported(f"the type {type_name}")
        self._index(self.types[type_name].table, "id")  # every row is remembered by its id
        fields = tuple(
            self._field(parent, key, sub) for key, sub in self._subfields(parent, details).items()
        )
        return ObjectPlan(type_name, fields)

    def _field(self, parent: GraphQLObjectType, key: str, details: FieldDetailsList) -> Field:
        nodes = self._nodes(details)
        name = nodes[0].name.value
        if name == TYPENAME:
            return Typename(key, parent.name)
        definition = self._definition(parent, name)
        type_model = self.types[parent.name]
        spec = type_model.fields.get(name)
        if spec is None:
            return self._column(type_model, key, definition)
        nullable = not is_non_null_type(definition.type)
        table = type_model.table
        if isinstance(spec, model.ToOne):
            target = model.TYPES[spec.target].table
            child = self._object(spec.target, details)
            return links.ById(
                key,
                nodes,
                nullable,
                target,
                self.layouts.columns(target),
                self._index(table, spec.column),
                spec.column,
                child,
            )
        if isinstance(spec, model.ToMany):
            target = model.TYPES[spec.target].table
            child = self._object(spec.target, details)
            return links.ByParent(
                key,
                nodes,
                nullable,
                target,
                self.layouts.columns(target),
                spec.parent,
                self._index(target, spec.parent),
                spec.order,
                self._index(table, "id"),
                child,
                not spec.one,
                _items_nullable(definition),
            )
        if isinstance(spec, model.WriterOf):
            target = model.TYPES[spec.target].table
            child = self._object(spec.target, details)
            return links.RunOfGroup(
                key,
                nodes,
                nullable,
                target,
                self.layouts.columns(target),
                spec.wrote,
                spec.triggered,
                self._index(target, spec.wrote),
                self._index(target, spec.triggered),
                self._index(table, "id"),
                child,
            )
        if isinstance(spec, model.Paged):
            target = model.TYPES[spec.target].table
            shape = self._shape(definition, details, spec.target)
            return connections.ListOf(
                key,
                nodes,
                nullable,
                definition,
                target,
                self.layouts.columns(target),
                spec.parent,
                self._index(target, spec.parent),
                self._index(table, "id"),
                model.LIST_CHECKS[spec.target],
                shape,
            )
        if isinstance(spec, model.Composite):
            return self._embedded(key, definition, details, spec, table)
        if self.loaded:
            raise Unsupported(f"{key}: its conversion reads the stored value")
        return Column(key, self._index(table, spec.column), spec.convert)

    def _leaf(self, named: GraphQLLeafType) -> Convert | None:
        convert = leaf(named)
        return None if self.loaded and convert is decoded else convert

    def _column(self, type_model: model.TypeModel, key: str, definition: GraphQLField) -> Column:
        strawberry_field = definition.extensions.get("strawberry-definition")
        if strawberry_field is None or strawberry_field.base_resolver is not None:
            raise Unsupported(f"{key}: a field with a resolver that model.py does not declare")
        named = get_named_type(definition.type)
        if not is_leaf_type(named):
            raise Unsupported(f"{key}: an object field that model.py does not declare")
        column = _column_of(type_model, strawberry_field.python_name)
        convert = self._leaf(named)
        if is_non_null_type(definition.type) and column.nullable:
            convert = required(convert)
        return Column(key, self._index(type_model.table, column.key), convert)

    def _embedded(
        self,
        key: str,
        definition: GraphQLField,
        details: FieldDetailsList,
        spec: model.Composite,
        table: Table,
    ) -> Embedded:
        embedded = get_named_type(definition.type)
        assert isinstance(embedded, GraphQLObjectType)
        columns = tuple(self._index(table, name) for name in spec.columns)
        fields: list[tuple[str, int, Any]] = []
        for sub_key, sub in self._subfields(embedded, details).items():
            name = self._nodes(sub)[0].name.value
            if name == TYPENAME:
                fields.append((sub_key, -1, None))
                continue
            named = get_named_type(self._definition(embedded, name).type)
            assert isinstance(named, GraphQLLeafType)
            fields.append((sub_key, spec.fields.index(name), self._leaf(named)))
        return Embedded(key, spec.make, columns, tuple(fields), embedded.name)

    # -- connections ----------------------------------------------------------------------

    def _shape(self, definition: GraphQLField, details: FieldDetailsList, node_type: str) -> Shape:
        connection = get_named_type(definition.type)
        assert isinstance(connection, GraphQLObjectType)
        selected: list[tuple[str, str, Any]] = []
        for key, sub in self._subfields(connection, details).items():
            name = self._nodes(sub)[0].name.value
            if name == TYPENAME:
                selected.append((key, name, connection.name))
            elif name == "totalCount":
                selected.append((key, name, None))
            elif name == "pageInfo":
                selected.append((key, name, self._parts(connection, name, sub, None)))
            elif name == "edges":
                selected.append((key, name, self._parts(connection, name, sub, node_type)))
            else:
                raise Unsupported(f"{connection.name}.{name}")
        table = model.TYPES[node_type].table
        return Shape(tuple(selected), self._index(table, "created_at"), self._index(table, "id"))

    def _parts(
        self,
        connection: GraphQLObjectType,
        name: str,
        details: FieldDetailsList,
        node_type: str | None,
    ) -> Selected:
        """An edge's or the page info's selection: (key, field name, node plan or typename)."""
        part = get_named_type(self._definition(connection, name).type)
        assert isinstance(part, GraphQLObjectType)
        selected: list[tuple[str, str, Any]] = []
        for key, sub in self._subfields(part, details).items():
            field_name = self._nodes(sub)[0].name.value
            if field_name == TYPENAME:
                selected.append((key, field_name, part.name))
            elif field_name == "node" and node_type is not None:
                selected.append((key, field_name, self._object(node_type, sub)))
            elif field_name in (
                "cursor",
                "hasNextPage",
                "hasPreviousPage",
                "startCursor",
                "endCursor",
            ):
                selected.append((key, field_name, None))
            else:
                raise Unsupported(f"{part.name}.{field_name}")
        return tuple(selected)


@dataclass(frozen=True, slots=True)
class EventPlan:
    """A subscription's event from its row: the root field's key and the object's plan, over
    the row's attributes in the plan's column order."""

    key: str
    row: type
    attributes: tuple[str, ...]
    object: ObjectPlan

    def data(self, event: Any) -> dict[str, Any] | None:
        """The event's `data`; None for an event that is not a row of the planned table."""
        if type(event) is not self.row:
            return None
        row = tuple(getattr(event, name) for name in self.attributes)
        # columns, typenames and composites read the row alone, no builder
        return {self.key: self.object.build(cast("Builder", None), row, None)}


def plan_event(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variables: VariableValues,
    operation: OperationDefinitionNode,
) -> EventPlan:
    return Planner(
        schema, fragments, variables, operation, model.EVENT_TYPES, loaded=True
    ).plan_event()


def plan_operation(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variables: VariableValues,
    operation: OperationDefinitionNode,
) -> OperationPlan:
    return Planner(schema, fragments, variables, operation).plan()


__all__ = ["EventPlan", "Kind", "Planner", "plan_event", "plan_operation"]
