"""The depth limit: how many levels of fields an operation nests (introspection aside)."""

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


class _Depth:
    def __init__(self, fragment_of: FragmentOf) -> None:
        self.fragments = FragmentMemo(fragment_of, 0)

    def of(self, selection_set: SelectionSetNode) -> int:
        return max((self.selection(node) for node in selection_set.selections), default=0)

    def selection(self, node: Any) -> int:
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__"):
                return 0
            return 1 + (self.of(node.selection_set) if node.selection_set else 0)
        if isinstance(node, InlineFragmentNode):
            return self.of(node.selection_set)
        if isinstance(node, FragmentSpreadNode):
            return self.fragments.get(
                node.name.value, None, lambda fragment: self.of(fragment.selection_set)
            )
        return 0


def operation_depth(operation: OperationDefinitionNode, fragment_of: FragmentOf) -> int:
    return _Depth(fragment_of).of(operation.selection_set)


DEPTH = Limit(
    "depth",
    lambda context, operation: operation_depth(operation, context.get_fragment),
    lambda depth, maximum: (
        f"The operation nests fields {depth} levels deep; at most {maximum} levels are allowed."
    ),
)
