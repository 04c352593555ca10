"""The limit rules are made once, so strawberry's ValidationCache serves a repeated document."""

import uuid

import pytest

from runql.limits import Limits
from runql.security.depth import DEPTH
from runql.security.limit_rule import limit_rule
from runql.security.rules import validation_rules
from runql.settings import Settings
from tests.conftest import GraphQLClient


@pytest.fixture
def depth_validations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every time the depth rule of the test settings validates a document."""
    rule = limit_rule(DEPTH, Settings().max_depth)
    seen: list[object] = []
    original = rule.__init__

    def counting(self: object, context: object) -> None:
        seen.append(context)
        original(self, context)  # type: ignore[arg-type]

    monkeypatch.setattr(rule, "__init__", counting)
    return seen


def _unique_document() -> str:
    """A document no earlier test validated: the cache lives as long as the process."""
    return f"query Q{uuid.uuid4().hex} {{ runs(first: 1) {{ totalCount }} }}"


async def test_a_repeated_document_is_validated_once(
    gql: GraphQLClient, depth_validations: list[object]
) -> None:
    document = _unique_document()

    first = await gql(document)
    second = await gql(document)

    assert first["data"] == second["data"] == {"runs": {"totalCount": 120}}
    assert len(depth_validations) == 1


async def test_each_new_document_is_validated(
    gql: GraphQLClient, depth_validations: list[object]
) -> None:
    await gql(_unique_document())
    await gql(_unique_document())

    assert len(depth_validations) == 2


def test_the_rules_of_equal_limits_are_the_same_classes() -> None:
    settings = Settings()

    first = validation_rules(Limits.from_settings(settings))
    again = validation_rules(Limits.from_settings(Settings()))

    assert first is again
    assert all(a is b for a, b in zip(first, again, strict=True))
