"""A repeated document costs no parsing and no planning: both are cached (validation is too,
see tests/hardening/test_validation_cache.py)."""

import uuid

import pytest
from strawberry.extensions import ParserCache

from runql.fastpath import cache
from tests.fastpath.conftest import BothExecutors


@pytest.fixture
def plannings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations planned from now on."""
    planned: list[str] = []
    plan = cache.plan_operation

    def counting(*args: object) -> object:
        planned.append(str(args[-1].name.value))  # type: ignore[attr-defined]
        return plan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "plan_operation", counting)
    return planned


def _unique() -> str:
    return f"query Q{uuid.uuid4().hex} {{ runs(first: 2) {{ edges {{ node {{ id }} }} }} }}"


async def test_a_repeated_document_is_parsed_and_planned_once(
        both: BothExecutors, plannings: list[str]) -> None:
    parses = ParserCache().cached_parse_document
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
