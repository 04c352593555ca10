"""Plans are made once per document and the values of its @include/@skip variables."""

from graphql import parse
from graphql.execution.collect_fields import FragmentDetails

from runql.fastpath.cache import condition_variables
from tests.fastpath.conftest import BothExecutors, Ran

CONDITIONAL = """query($withAgent: Boolean!, $first: Int) {
  runs(first: $first) { edges { node { id agent @include(if: $withAgent) { name } } } } }"""


def test_only_include_and_skip_variables_key_a_plan() -> None:
    document = parse("""query($a: Boolean!, $b: Boolean!, $n: Int) {
      runs(first: $n) { totalCount @skip(if: $b) ...F } }
      fragment F on RunConnection { edges @include(if: $a) { cursor } }""")
    operation, fragment = document.definitions
    found = condition_variables(operation, {"F": FragmentDetails(fragment)})  # type: ignore[arg-type]
    assert found == ("a", "b")


async def test_a_plan_follows_the_include_variable(both: BothExecutors) -> None:
    without = await both.compare(CONDITIONAL, {"withAgent": False, "first": 2})
    with_agent = await both.compare(CONDITIONAL, {"withAgent": True, "first": 3})
    again = await both.compare(CONDITIONAL, {"withAgent": False, "first": 4})
    assert {without.executor, with_agent.executor, again.executor} == {"fast"}
    assert all("agent" not in edge["node"] for edge in without.body["data"]["runs"]["edges"])
    assert all("agent" in edge["node"] for edge in with_agent.body["data"]["runs"]["edges"])
    assert len(again.body["data"]["runs"]["edges"]) == 4


async def test_two_operations_of_one_document_each_have_their_plan(both: BothExecutors) -> None:
    document = (
        "query Ids { runs(first: 2) { edges { node { id } } } } "
        "query Count { runs { totalCount } agents { totalCount } }"
    )
    ids = await both.compare(document, operation_name="Ids")
    count = await both.compare(document, operation_name="Count")
    assert list(ids.body["data"]["runs"]) == ["edges"]
    assert list(count.body["data"]) == ["runs", "agents"]
    assert {ids.executor, count.executor} == {"fast"}


async def test_an_object_met_again_is_the_same_unless_a_field_under_it_fails(
    both: BothExecutors,
) -> None:
    """An agent under many runs is built once (its plan records no failure, so its dict is
    the same wherever it stands); one whose list refuses its arguments is built at each place,
    each failure reported at its own path. (The standard executor reports those in the order
    its loaders resolve, not the response's: the errors are compared as a set.)"""
    shared = await both.compare(
        "{ runs(first: 30) { edges { node { agent { id name kind createdAt } } } } }"
    )
    agents = [edge["node"]["agent"] for edge in shared.body["data"]["runs"]["edges"]]
    assert len({agent["id"] for agent in agents}) < len(agents)  # agents met more than once
    failing = (
        "{ runs(first: 30) { edges { node { agent { id runs(first: -1) { totalCount } } } } } }"
    )
    fast, standard = await both.fast(failing), await both.standard(failing)
    assert shared.executor == fast.executor == "fast"
    assert fast.body["data"] == standard.body["data"]

    def paths(ran: Ran) -> set[tuple[str | int, ...]]:
        return {tuple(error["path"]) for error in ran.body["errors"]}

    assert paths(fast) == paths(standard)
    assert len(paths(fast)) == len(agents)
