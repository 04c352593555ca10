"""A repeated document costs no parsing and no planning: both are cached (validation is too,
see tests/hardening/test_validation_cache.py)."""

import functools
import uuid
from typing import Any, cast

import pytest
from graphql import GraphQLSchema, OperationDefinitionNode
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.values import VariableValues
from strawberry.extensions import ParserCache

from runql.fastpath import cache, planner
from runql.fastpath.plan import OperationPlan
from tests.fastpath.conftest import BothExecutors, Ran


@pytest.fixture
def plannings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations planned from now on."""
    planned: list[str] = []
    plan = planner.plan_operation

    def counting(
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> OperationPlan:
        assert operation.name is not None
        planned.append(operation.name.value)
        return plan(schema, fragments, variables, operation)

    monkeypatch.setattr(cache, "plan_operation", counting)
    return planned


def _unique() -> str:
    return f"query Q{uuid.uuid4().hex} {{ runs(first: 2) {{ edges {{ node {{ id }} }} }} }}"


async def test_a_repeated_document_is_parsed_and_planned_once(
    both: BothExecutors, plannings: list[str]
) -> None:
    # Strawberry types its parse cache as a plain Callable; it is functools.lru_cache's wrapper
    # (strawberry/extensions/parser_cache.py), whose cache_info() this test reads.
    parses = cast("functools._lru_cache_wrapper[Any]", ParserCache().cached_parse_document)
    document = _unique()
    before = parses.cache_info()

    first = await both.fast(document)
    second = await both.fast(document)

    after = parses.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert len(plannings) == 1
    assert first.body == second.body
    assert first.executor == second.executor == "fast"


async def test_each_new_document_is_planned(both: BothExecutors, plannings: list[str]) -> None:
    await both.fast(_unique())
    await both.fast(_unique())
    assert len(plannings) == 2


async def test_arguments_converted_once_follow_each_request_s_variables(
    both: BothExecutors,
) -> None:
    """Arguments the resolver's conversion makes (a list's arguments left to their defaults)
    are kept by the variables' values: each request still gets its own page."""
    document = (
        "query Page($first: Int, $after: String) { runs(first: $first, after: $after) {"
        " pageInfo { endCursor } edges { node { id } } } }"
    )
    first = await both.compare(document, {"first": 2})
    cursor = first.body["data"]["runs"]["pageInfo"]["endCursor"]
    after = await both.compare(document, {"first": 2, "after": cursor})
    again = await both.compare(document, {"first": 2})
    fewer = await both.compare(document, {"first": 1})

    def ids(ran: Ran) -> list[str]:
        return [edge["node"]["id"] for edge in ran.body["data"]["runs"]["edges"]]

    assert len(ids(first)) == 2
    assert not set(ids(first)) & set(ids(after))
    assert ids(again) == ids(first)
    assert ids(fewer) == ids(first)[:1]
    assert {first.executor, after.executor, again.executor, fewer.executor} == {"fast"}
