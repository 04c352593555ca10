"""Plans, made once per document, operation and the values of the variables its @include and
@skip use (the only variables that change which fields are selected). Bounded, per schema."""

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar
from weakref import WeakKeyDictionary

from graphql import (
    FieldNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.values import VariableValues

from runql.fastpath.plan import OperationPlan
from runql.fastpath.planner import CONDITIONS, EventPlan, plan_event, plan_operation
from runql.fastpath.unsupported import Unsupported

MAX_PLANS = 512

P = TypeVar("P", OperationPlan, EventPlan)


def _conditions(selection_set: SelectionSetNode, found: set[str]) -> None:
    for selection in selection_set.selections:
        for directive in selection.directives or ():
            if directive.name.value in CONDITIONS:
                found.update(
                    argument.value.name.value
                    for argument in directive.arguments or ()
                    if isinstance(argument.value, VariableNode)
                )
        if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
            _conditions(selection.selection_set, found)


def condition_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
) -> tuple[str, ...]:
    found: set[str] = set()
    _conditions(operation.selection_set, found)
    for fragment in fragments.values():
        _conditions(fragment.definition.selection_set, found)
    return tuple(sorted(found))


class PlanCache:
    def __init__(self, maxsize: int = MAX_PLANS) -> None:
        self._maxsize = maxsize
        self._conditions: dict[Hashable, tuple[str, ...]] = {}
        self._plans: OrderedDict[Hashable, OperationPlan | None] = OrderedDict()
        self._events: OrderedDict[Hashable, EventPlan | None] = OrderedDict()

    def _key(
        self,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> Hashable | None:
        if operation.loc is None:
            return None
        document = (operation.loc.source.body, operation.loc.start)
        names = self._conditions.get(document)
        if names is None:
            if len(self._conditions) >= self._maxsize:
                self._conditions.clear()
            names = self._conditions[document] = condition_variables(operation, fragments)
        return (document, tuple(variables.coerced.get(name) for name in names))

    def plan(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> OperationPlan | None:
        """The operation's plan, or None where the planner does not cover it."""
        return self._cached(self._plans, plan_operation, schema, fragments, variables, operation)

    def event(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> EventPlan | None:
        """The plan of a subscription's events, or None where the planner does not cover it."""
        return self._cached(self._events, plan_event, schema, fragments, variables, operation)

    def _cached(
        self,
        found: "OrderedDict[Hashable, P | None]",
        planner: Callable[
            [GraphQLSchema, dict[str, FragmentDetails], VariableValues, OperationDefinitionNode], P
        ],
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> P | None:
        """`planner`'s plan, kept in `found` (least recently used first) under the key."""
        key = self._key(fragments, variables, operation)
        if key is not None and key in found:
            found.move_to_end(key)
            return found[key]
        try:
            plan: P | None = planner(schema, fragments, variables, operation)
        except Unsupported:
            plan = None
        if key is not None:
            found[key] = plan
            if len(found) > self._maxsize:
                found.popitem(last=False)
        return plan


_caches: WeakKeyDictionary[GraphQLSchema, PlanCache] = WeakKeyDictionary()


def plans_of(schema: GraphQLSchema) -> PlanCache:
    cache = _caches.get(schema)
    if cache is None:
        cache = _caches[schema] = PlanCache()
    return cache
