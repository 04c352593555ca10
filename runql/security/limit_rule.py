"""A query limit as a validation rule: an operation measured (depth, aliases, cost) and refused
with QUERY_TOO_COMPLEX when over its maximum.

strawberry's ValidationCache keys on the rule classes, so each (limit, maximum) makes its class
once (runql/security/rules.py).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from graphql import OperationDefinitionNode, ValidationContext, ValidationRule
from graphql.language import SKIP, VisitorAction

from runql.security.errors import too_complex


@dataclass(frozen=True)
class Limit:
    name: str  # the error's `extensions.limit`
    measure: Callable[[ValidationContext, OperationDefinitionNode], int]
    describe: Callable[[int, int], str]  # (actual, maximum) -> the error's message


@cache
def limit_rule(limit: Limit, maximum: int) -> type[ValidationRule]:
    """The rule that refuses an operation measuring more than `maximum`."""

    class LimitRule(ValidationRule):
        def enter_operation_definition(
            self, node: OperationDefinitionNode, *_args: object
        ) -> VisitorAction:
            actual = limit.measure(self.context, node)
            if actual > maximum:
                self.report_error(
                    too_complex(
                        limit.describe(actual, maximum),
                        limit.name,
                        maximum,
                        actual=actual,
                        nodes=[node],
                    )
                )
            return SKIP

    LimitRule.__name__ = LimitRule.__qualname__ = f"{limit.name.title()}Limit"
    return LimitRule
