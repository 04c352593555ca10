"""Generated operations (tests/fastpath/operations.py) give the same body on both executors:
the same data, the same errors, keys in the same order."""

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fastpath.conftest import BothExecutors, DemoIds
from tests.fastpath.operations import operations

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its operation
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@SETTINGS
@given(data=st.data())
async def test_generated_operations_give_the_same_body(
    data: st.DataObject, both: BothExecutors, demo_ids: DemoIds
) -> None:
    operation = data.draw(operations(demo_ids.by_kind), label="operation")
    await both.compare(operation.document, operation.variables)


@settings(SETTINGS, max_examples=1)
@given(data=st.data())
async def test_most_generated_operations_take_the_fast_path(
    data: st.DataObject, both: BothExecutors, demo_ids: DemoIds
) -> None:
    executed = []
    for _ in range(40):
        operation = data.draw(operations(demo_ids.by_kind))
        ran = await both.compare(operation.document, operation.variables)
        if ran.executor is not None:  # None: refused before execution (validation, limits)
            executed.append(ran.executor)
    assert len(executed) >= 20
    assert executed.count("fast") >= 0.8 * len(executed), executed
