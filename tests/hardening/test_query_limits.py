"""Depth, aliases, tokens and cost: each a setting, each refused with QUERY_TOO_COMPLEX."""

import time
from pathlib import Path

import pytest
from graphql import get_introspection_query

from runql.settings import Settings
from tests.conftest import GraphQLClient
from tests.hardening.conftest import MakeGql, codes, limit_error

QUERIES = Path(__file__).resolve().parents[2] / "queries"
DEFAULTS = Settings()


def _nested(levels: int) -> str:
    """A valid query `levels` fields deep: runs > edges > node > thread > runs > …"""
    path = ["runs(first: 1)", "edges", "node", "thread"]
    names = [path[i % 4] for i in range(levels - 1)]
    leaf = "totalCount" if names[-1].startswith("runs") else "id"
    return "{ " + " { ".join(names) + " { " + leaf + " }" * len(names) + " }"


def _aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: agents(first: 1) {{ totalCount }}" for i in range(count)) + " }"


async def test_the_default_depth_admits_12_levels_and_refuses_13(gql: GraphQLClient) -> None:
    assert DEFAULTS.max_depth == 12
    assert "errors" not in await gql(_nested(12))

    refused = limit_error(await gql(_nested(13)))

    assert refused == {"code": "QUERY_TOO_COMPLEX", "limit": "depth", "maximum": 12, "actual": 13}


async def test_depth_follows_the_setting_and_counts_through_fragments(gql_with: MakeGql) -> None:
    gql = gql_with(max_depth=3)
    via_fragment = (
        "{ runs(first: 1) { ...Page } } fragment Page on RunConnection { edges { node { id } } }"
    )

    assert limit_error(await gql(via_fragment))["actual"] == 4
    assert "errors" not in await gql("{ runs(first: 1) { edges { cursor } } }")


async def test_more_aliases_than_allowed_are_refused(gql: GraphQLClient) -> None:
    assert DEFAULTS.max_aliases == 15
    assert "errors" not in await gql(_aliased(15))

    refused = limit_error(await gql(_aliased(16)))

    assert (refused["limit"], refused["maximum"], refused["actual"]) == ("aliases", 15, 16)


async def test_aliases_in_a_fragment_count_each_time_it_is_spread(gql_with: MakeGql) -> None:
    document = (
        "{ runs(first: 1) { edges { node { ...Ids } } } "
        "  more: runs(first: 1) { edges { node { ...Ids } } } } "
        "fragment Ids on Run { a: id b: id }"
    )

    refused = limit_error(await gql_with(max_aliases=4)(document))

    assert refused["actual"] == 5  # `more`, then a and b twice


async def test_a_document_over_the_token_limit_is_refused_unparsed(gql: GraphQLClient) -> None:
    assert DEFAULTS.max_tokens == 2000
    document = "{ runs { " + "totalCount " * 2000 + "} }"

    body = await gql(document)

    assert body["data"] is None
    assert limit_error(body) == {"code": "QUERY_TOO_COMPLEX", "limit": "tokens", "maximum": 2000}
    assert "2000 tokens" in body["errors"][0]["message"]


async def test_the_token_limit_follows_the_setting(gql_with: MakeGql) -> None:
    gql = gql_with(max_tokens=12)

    assert "errors" not in await gql("{ runs(first: 1) { totalCount } }")  # 11 tokens
    over = "{ runs(first: 1) { totalCount totalCount totalCount } }"  # 13 tokens
    assert limit_error(await gql(over))["limit"] == "tokens"


@pytest.mark.parametrize(
    ("document", "cost"),
    [
        ("{ runs { totalCount } }", 2),
        ("{ runs(first: 10) { edges { node { agent { id } } } } }", 21),
        ("{ runs(last: 5) { edges { node { agent { id } } } } }", 11),
        ("{ runs { edges { node { agent { id } } } } }", 41),
        ("query($n: Int) { runs(first: $n) { edges { node { agent { id } } } } }", 201),
        (
            "{ runs(first: 10) { edges { node { thread { runs(first: 10) { edges { node { "
            "agent { id } } } } } } } } }",
            231,
        ),
        ("{ runs(first: 10) { edges { node { errors { run { id } } } } } }", 221),
        ('{ nodes(ids: ["run_a", "run_b", "run_c"]) { id ... on Run { agent { id } } } }', 4),
        ('mutation { cancelRun(id: "run_nope") { run { id } } }', 11),
    ],
    ids=[
        "count",
        "page-of-10",
        "last-5",
        "default-page-20",
        "variable-page-counts-100",
        "nested-connections-multiply",
        "plain-list-counts-20",
        "nodes-count-their-ids",
        "mutation-costs-10",
    ],
)
async def test_costs_count_page_sizes_and_nested_lists_multiply(
    gql_with: MakeGql, document: str, cost: int
) -> None:
    refused = limit_error(await gql_with(max_cost=1)(document))

    assert (refused["limit"], refused["maximum"], refused["actual"]) == ("cost", 1, cost)


async def test_the_default_cost_refuses_three_full_nested_pages(gql: GraphQLClient) -> None:
    assert DEFAULTS.max_cost == 50_000
    document = (
        "{ runs(first: 100) { edges { node { thread { runs(first: 100) { edges { node { "
        "thread { runs(first: 100) { edges { node { id } } } } } } } } } } } }"
    )

    assert limit_error(await gql(document))["actual"] == 1 + 100 * (3 + 100 * (2 + 101))


async def test_a_refused_mutation_writes_nothing(gql: GraphQLClient, gql_with: MakeGql) -> None:
    document = 'mutation { createAgent(input: {name: "x", kind: "echo"}) { agent { id } } }'

    assert limit_error(await gql_with(max_cost=5)(document))["limit"] == "cost"

    agents = await gql("{ agents(first: 100) { edges { node { name } } } }")
    assert "x" not in [edge["node"]["name"] for edge in agents["data"]["agents"]["edges"]]


DOCUMENTS = {path.stem: path.read_text() for path in sorted(QUERIES.glob("*.graphql"))}


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
async def test_every_document_in_queries_passes_the_default_limits(
    gql: GraphQLClient, document: str
) -> None:
    body = await gql(document, {"id": "run_missing", "first": 100})

    assert "QUERY_TOO_COMPLEX" not in codes(body), body


async def test_introspection_is_not_held_to_depth_or_cost(gql: GraphQLClient) -> None:
    body = await gql(get_introspection_query(descriptions=True))

    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_fragments_spread_into_fragments_are_costed_in_linear_time(
    gql: GraphQLClient,
) -> None:
    chain = " ".join(f"fragment F{i} on Run {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30))
    document = '{ run(id: "run_missing") { ...F0 } } ' + chain + " fragment F30 on Run { id }"

    started = time.perf_counter()
    body = await gql(document)

    assert time.perf_counter() - started < 2
    assert body["data"] == {"run": None}


async def test_a_fragment_cycle_is_a_validation_error_not_a_crash(gql: GraphQLClient) -> None:
    document = (
        '{ run(id: "run_missing") { ...A } } fragment A on Run { ...B } fragment B on Run { ...A }'
    )

    assert set(codes(await gql(document))) == {"GRAPHQL_VALIDATION_FAILED"}
