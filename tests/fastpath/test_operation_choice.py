"""Both executors refuse a document of several operations without operationName alike."""

from tests.fastpath.conftest import BothExecutors


async def test_several_operations_without_a_name_fail_alike(both: BothExecutors) -> None:
    document = (
        "query Ids { runs(first: 2) { edges { node { id } } } } query Count { runs { totalCount } }"
    )

    ran = await both.compare(document)

    assert ran.body["data"] is None
    assert [e["extensions"]["code"] for e in ran.body["errors"]] == ["BAD_REQUEST"]
