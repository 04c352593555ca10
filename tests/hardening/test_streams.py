"""Over websockets (strawberry's Schema.stream) the limits answer as they do over HTTP."""

from contextlib import aclosing
from typing import Any

from strawberry.types import ExecutionResult

from runql.resolvers.context import Context
from runql.served_schema import schema_for
from runql.settings import Environment
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID
from tests.hardening.conftest import running_run, settings_with

RUN_STATUS = 'subscription { runStatus(id: "run_missing") { id status } }'


async def _first_result(database: Database, document: str, **overrides: Any) -> dict[str, Any]:
    """The first message a websocket client would get for `document`."""
    settings = settings_with(**overrides)
    context = Context.create(database, settings, DEFAULT_ORG_ID)
    results = await schema_for(settings).stream(document, context_value=context)
    async with aclosing(results) as stream:
        async for result in stream:
            # No @defer or @stream here: the first result is a whole one, not an increment.
            assert isinstance(result, ExecutionResult), result
            return {
                "data": result.data,
                "errors": [error.formatted for error in result.errors or []],
            }
    raise AssertionError("no result")


def _codes(result: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in result["errors"]]


async def test_a_document_over_the_token_limit_is_an_error_result(
    demo_database: Database,
) -> None:
    result = await _first_result(demo_database, RUN_STATUS, max_tokens=5)

    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert result["errors"][0]["extensions"]["limit"] == "tokens"


async def test_a_syntax_error_is_an_error_result(demo_database: Database) -> None:
    result = await _first_result(demo_database, "subscription { runStatus(id: ")

    assert _codes(result) == ["GRAPHQL_PARSE_FAILED"]


async def test_a_subscription_over_the_depth_limit_is_refused(demo_database: Database) -> None:
    document = (
        'subscription { runStatus(id: "run_missing") { thread { runs { edges { node '
        "{ id } } } } } }"
    )

    result = await _first_result(demo_database, document, max_depth=4)

    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert result["errors"][0]["extensions"]["actual"] == 6


async def test_production_hides_suggestions_over_websockets(demo_database: Database) -> None:
    document = 'subscription { runStatus(id: "run_missing") { statu } }'

    result = await _first_result(demo_database, document, env=Environment.PRODUCTION)

    assert _codes(result) == ["GRAPHQL_VALIDATION_FAILED"]
    assert result["errors"][0]["message"] == "Cannot query field 'statu' on type 'Run'."


async def test_a_mutation_over_websockets_is_held_to_the_timeout(
    demo_database: Database,
) -> None:
    """cancelRun of a RUNNING run waits (up to 5 s) for a worker that never comes."""
    run_id = await running_run(demo_database)
    document = f'mutation {{ cancelRun(id: "{run_id}") {{ run {{ id }} }} }}'

    result = await _first_result(demo_database, document, workers=1, execution_timeout_seconds=0.2)

    assert _codes(result) == ["TIMEOUT"]
