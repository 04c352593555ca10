"""A prepared operation's scalar variables are coerced as graphql-core's get_variable_values
coerces them: the same values where it finds no error, and nothing (the full coercion decides)
where it finds one."""

from typing import Any

import pytest
from graphql.execution.values import get_variable_values
from graphql.pyutils import Undefined

from runql.fastpath.prepared import PreparedOperations
from runql.limits import Limits
from runql.served_schema import schema_for
from runql.settings import Environment, Settings

DOCUMENT = """
query Q($id: ID!, $first: Int, $after: String, $skip: Boolean!) {
  run(id: $id) @skip(if: $skip) { id }
  other: run(id: "run_00000000000000000000") @include(if: $skip) { id }
  runs(first: $first, after: $after) { edges { node { id } } }
}
"""
BASE = {"id": "run_00000000000000000000", "skip": False}
VALUES: list[Any] = [
    Undefined,
    None,
    0,
    1,
    -1,
    7.0,
    7.5,
    2**31,
    -(2**31) - 1,
    "",
    "x",
    "7",
    True,
    False,
    [1],
    {"a": 1},
    1e300,
]


@pytest.mark.parametrize("name", ["id", "first", "after", "skip"])
def test_scalar_variables_are_coerced_as_graphql_core_coerces_them(name: str) -> None:
    settings = Settings(env=Environment.PRODUCTION, workers=0)
    schema = schema_for(settings)._schema
    prepared = PreparedOperations(schema, Limits.from_settings(settings)).get(DOCUMENT, None)
    assert prepared is not None
    assert prepared.scalars is not None
    definitions = prepared.operation.variable_definitions or ()
    for value in VALUES:
        inputs = dict(BASE)
        if value is Undefined:
            inputs.pop(name, None)
        else:
            inputs[name] = value
        ours = prepared.variables(inputs)
        theirs = get_variable_values(schema, definitions, inputs)
        if isinstance(theirs, list):
            assert ours is None, (name, value)
        else:
            assert ours is not None, (name, value)
            assert ours.coerced == theirs.coerced, (name, value)
            assert {
                k: (v.signature.name, str(v.signature.type), v.value)
                for k, v in ours.sources.items()
            } == {
                k: (v.signature.name, str(v.signature.type), v.value)
                for k, v in theirs.sources.items()
            }
