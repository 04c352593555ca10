"""The validation rules a set of limits adds, made once per set of limits.

strawberry's ValidationCache keys on the rule classes: rules built per request (as
QueryDepthLimiter and MaxAliasesLimiter do) would make every validation a miss.
"""

from functools import cache

from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule

from runql.limits import Limits
from runql.security.aliases import ALIASES
from runql.security.cost import COST
from runql.security.depth import DEPTH
from runql.security.limit_rule import limit_rule


@cache
def validation_rules(limits: Limits) -> tuple[type[ASTValidationRule], ...]:
    rules = (
        limit_rule(DEPTH, limits.max_depth),
        limit_rule(ALIASES, limits.max_aliases),
        limit_rule(COST, limits.max_cost),
    )
    if limits.introspection:
        return rules
    return (*rules, NoSchemaIntrospectionCustomRule)
