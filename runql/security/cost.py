"""The cost limit: about how many objects an operation can make runql load.

A field that returns an object costs 1 and a scalar 0, unless FIELD_COSTS says otherwise.
What is under a list counts once per item it can hold: a connection's page is its `first` or
`last` (20 when absent, 100 when a variable gives it: the cap, since any value up to it may
come), `nodes(ids:)` one per id, and any other list 20. Nested lists multiply. On a connection
itself only `totalCount` costs (1: a count); its `edges` and `pageInfo` are the page.
Introspection fields are free here: graphql-core's MaxIntrospectionDepthRule bounds them.
"""

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
)

from runql.limits import DEFAULT_PAGE_SIZE, MAX_NODES, MAX_PAGE_SIZE
from runql.security.fragments import FragmentMemo, FragmentOf
from runql.security.limit_rule import Limit

LIST_SIZE = DEFAULT_PAGE_SIZE
PAGE_ARGUMENTS = ("first", "last")
COUNT_FIELD = "totalCount"
ID_LIST_ARGUMENTS = {"ids": MAX_NODES}
FIELD_COSTS: dict[str, int] = {
    # a write: a transaction of several statements, and for runs, work for an agent
    "Mutation.createRun": 10,
    "Mutation.cancelRun": 10,
    "Mutation.createAgent": 10,
    "Mutation.updateAgent": 10,
    "Mutation.archiveAgent": 10,
}


def own_cost(parent: str, field: str, returns: GraphQLNamedType, *, on_connection: bool) -> int:
    cost = FIELD_COSTS.get(f"{parent}.{field}")
    if cost is not None:
        return cost
    if on_connection:
        return 1 if field == COUNT_FIELD else 0
    return 1 if is_composite_type(returns) else 0


def page_size(node: FieldNode) -> int:
    """The most items a connection field can return, as far as the document tells."""
    sizes = [
        _int_argument(argument.value)
        for argument in node.arguments or ()
        if argument.name.value in PAGE_ARGUMENTS
    ]
    given = [size for size in sizes if size is not None]
    return min(max(given), MAX_PAGE_SIZE) if given else DEFAULT_PAGE_SIZE


def _int_argument(value: Any) -> int | None:
    if isinstance(value, IntValueNode):
        return max(int(value.value), 0)
    if isinstance(value, VariableNode):
        return MAX_PAGE_SIZE
    return None


def _list_length(node: FieldNode, name: str, cap: int) -> int:
    value = next((a.value for a in node.arguments or () if a.name.value == name), None)
    if isinstance(value, ListValueNode):
        return min(len(value.values), cap)
    return cap if isinstance(value, VariableNode) else 1


def _is_connection(definition: GraphQLField) -> bool:
    return any(name in definition.args for name in PAGE_ARGUMENTS)


class _Cost:
    def __init__(self, schema: GraphQLSchema, fragment_of: FragmentOf) -> None:
        self.schema = schema
        self.fragments = FragmentMemo(fragment_of, 0)

    def of(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, page: int | None
    ) -> int:
        """`page` is the page size when `parent` is a connection, else None."""
        return sum(self.selection(node, parent, page) for node in selection_set.selections)

    def selection(self, node: Any, parent: GraphQLNamedType, page: int | None) -> int:
        if isinstance(node, FieldNode):
            return self.field(node, parent, page)
        if isinstance(node, InlineFragmentNode):
            return self.of(node.selection_set, self.type_of(node.type_condition, parent), page)
        if isinstance(node, FragmentSpreadNode):
            return self.fragments.get(
                node.name.value, page, lambda fragment: self.fragment(fragment, page)
            )
        return 0

    def fragment(self, fragment: FragmentDefinitionNode, page: int | None) -> int:
        parent = self.schema.get_type(fragment.type_condition.name.value)
        return 0 if parent is None else self.of(fragment.selection_set, parent, page)

    def type_of(
        self, condition: NamedTypeNode | None, parent: GraphQLNamedType
    ) -> GraphQLNamedType:
        named = self.schema.get_type(condition.name.value) if condition else None
        return named or parent

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        returns = get_named_type(definition.type)
        own = own_cost(parent.name, name, returns, on_connection=page is not None)
        if node.selection_set is None:
            return own
        inner_page = page_size(node) if _is_connection(definition) else None
        below = self.of(node.selection_set, returns, inner_page)
        return own + self.items(node, definition, page) * below

    def items(self, node: FieldNode, definition: GraphQLField, page: int | None) -> int:
        """How many times what is under the field counts: the items it can hold."""
        if not is_list_type(get_nullable_type(definition.type)):
            return 1
        if page is not None:
            return page
        for argument, cap in ID_LIST_ARGUMENTS.items():
            if argument in definition.args:
                return _list_length(node, argument, cap)
        return LIST_SIZE


def operation_cost(
    schema: GraphQLSchema, operation: OperationDefinitionNode, fragment_of: FragmentOf
) -> int:
    root = schema.get_root_type(operation.operation)
    return 0 if root is None else _Cost(schema, fragment_of).of(operation.selection_set, root, None)


COST = Limit(
    "cost",
    lambda context, operation: operation_cost(context.schema, operation, context.get_fragment),
    lambda cost, maximum: (
        f"The operation could cost {cost} (lists count their page size, nested lists multiply); "
        f"at most {maximum} is allowed."
    ),
)
