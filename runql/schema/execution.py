"""The standard executor: graphql-core's (as strawberry runs it), with runql's one change to
what it writes: a Float is coerced as GraphQL says, then written as runql.encoding.number writes
numbers, so that `cost.amount` is `1`, not `1.0`, as in the spec's example and as graphql-js
servers write it. graphql-core does not let a schema redefine Float, so the executor does it
where it completes a leaf. The fast path writes Floats with `float_output` too.
"""

from typing import Any

from graphql import GraphQLFloat, GraphQLLeafType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from runql.encoding import number


def float_output(value: Any) -> int | float:
    return number(GraphQLFloat.serialize(value))


class StandardExecutor(StrawberryGraphQLCoreExecutionContext):
    @staticmethod
    def complete_leaf_value(return_type: GraphQLLeafType, result: Any) -> Any:
        if return_type is GraphQLFloat:
            return float_output(result)
        return StrawberryGraphQLCoreExecutionContext.complete_leaf_value(return_type, result)
