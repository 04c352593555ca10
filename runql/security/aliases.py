"""The alias limit: how many aliased fields an operation asks for, fragments included."""

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from runql.security.fragments import FragmentMemo, FragmentOf
from runql.security.limit_rule import Limit


class _Aliases:
    def __init__(self, fragment_of: FragmentOf) -> None:
        self.fragments = FragmentMemo(fragment_of, 0)

    def of(self, selection_set: SelectionSetNode) -> int:
        return sum(self.selection(node) for node in selection_set.selections)

    def selection(self, node: Any) -> int:
        if isinstance(node, FieldNode):
            own = 1 if node.alias is not None else 0
            return own + (self.of(node.selection_set) if node.selection_set else 0)
        if isinstance(node, InlineFragmentNode):
            return self.of(node.selection_set)
        if isinstance(node, FragmentSpreadNode):
            return self.fragments.get(
                node.name.value, None, lambda fragment: self.of(fragment.selection_set)
            )
        return 0


def operation_aliases(operation: OperationDefinitionNode, fragment_of: FragmentOf) -> int:
    return _Aliases(fragment_of).of(operation.selection_set)


ALIASES = Limit(
    "aliases",
    lambda context, operation: operation_aliases(operation, context.get_fragment),
    lambda aliases, maximum: (
        f"The operation uses {aliases} aliases; at most {maximum} are allowed."
    ),
)
