"""The validation rules a set of limits adds, made once per set of limits.

strawberry's ValidationCache keys on the rule classes: rules built per request (as
QueryDepthLimiter and MaxAliasesLimiter do) would make every validation a miss.
"""

from functools import cache

from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule

from runql.limits import Limits
from runql.security.aliases import alias_rule
from runql.security.cost import cost_rule
from runql.security.depth import depth_rule


@cache
def validation_rules(limits: Limits) -> tuple[type[ASTValidationRule], ...]:
    rules = (
        depth_rule(limits.max_depth),
        alias_rule(limits.max_aliases),
        cost_rule(limits.max_cost),
    )
    if limits.introspection:
        return rules
    return (*rules, NoSchemaIntrospectionCustomRule)
