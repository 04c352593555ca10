"""Hypothesis strategies of query operations over runql's schema: fields of every type, aliases,
merged duplicates, inline fragments (on Node too), named fragments, @include/@skip with
literals and variables, pagination at the edges and past them, filters (good, inverted, with bad
ids), ids that name nothing or are malformed, and nesting several levels deep."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    get_named_type,
    is_leaf_type,
)
from hypothesis import strategies as st

from runql.served_schema import build_schema
from runql.storage.pages import Cursor

SCHEMA = build_schema()._schema
NODE_TYPES = [t.name for t in SCHEMA.get_possible_types(SCHEMA.get_type("Node"))]  # type: ignore[arg-type]
KINDS = {
    "Run": "run",
    "Agent": "agent",
    "Thread": "thread",
    "MessageGroup": "mgrp",
    "Message": "msg",
    "Actor": "act",
    "MessageContent": "cnt",
    "ContentPart": "part",
    "Attachment": "att",
    "AttachedItem": "itm",
    "RunError": "err",
}
CURSORS = [
    Cursor(datetime(2025, 5, day, 12, tzinfo=UTC), "run_zzzzzzzzzzzzzzzzzzzz").encode()
    for day in (20, 28, 31)
]
FIRSTS = [None, 0, 1, 2, 3, 5]
EDGE_FIRSTS = [100, 101, -1]
STAMPS = ["2025-05-01T00:00:00Z", "2025-05-25T00:00:00.000Z", "2025-05-31T18:30:00+02:00"]


@dataclass
class Document:
    """What a drawn operation needs besides its selection: fragments and variables."""

    ids: dict[str, list[str]]
    fragments: list[str] = field(default_factory=list)
    roots: set[str] = field(default_factory=set)
    variables: dict[str, tuple[str, Any]] = field(default_factory=dict)
    names: int = 0

    def name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def variable(self, graphql_type: str, value: Any) -> str:
        name = self.name("v")
        self.variables[name] = (graphql_type, value)
        return f"${name}"

    def text(self, selection: str) -> str:
        declared = ", ".join(f"${name}: {kind}" for name, (kind, _) in self.variables.items())
        head = f"query Generated({declared})" if declared else "query Generated"
        return "\n".join([f"{head} {selection}", *self.fragments])

    def values(self) -> dict[str, Any]:
        return {name: value for name, (_, value) in self.variables.items()}


@dataclass(frozen=True)
class Operation:
    document: str
    variables: dict[str, Any]


def _fields(type_name: str) -> dict[str, GraphQLField]:
    graphql_type = SCHEMA.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType)
    return dict(graphql_type.fields)


@st.composite
def _condition(draw: st.DrawFn, doc: Document) -> str:
    """ "" mostly; else an @include or @skip, on a literal or a variable."""
    kind = draw(st.sampled_from(["", "", "", "include", "skip"]))
    if not kind:
        return ""
    value = draw(st.booleans())
    argument = doc.variable("Boolean!", value) if draw(st.booleans()) else str(value).lower()
    return f" @{kind}(if: {argument})"


@st.composite
def _first(draw: st.DrawFn, doc: Document, choices: list[Any]) -> str:
    first = draw(st.sampled_from(choices))
    if first is None:
        return ""
    return f"first: {doc.variable('Int', first) if draw(st.booleans()) else first}"


@st.composite
def _page_arguments(draw: st.DrawFn, doc: Document, root: bool) -> list[str]:
    mode = draw(st.sampled_from(["", "first", "first", "after", "last", "before", "refused"]))
    found = [draw(_first(doc, FIRSTS))] if mode in ("first", "after") else []
    if mode == "after":
        found.append(f'after: "{draw(st.sampled_from(CURSORS))}"')
    elif mode == "before":
        found.append(f'last: 2, before: "{draw(st.sampled_from(CURSORS))}"')
    elif mode == "last":
        found.append(f"last: {draw(st.sampled_from([1, 3]))}")
    elif mode == "refused":  # each of these is a BAD_USER_INPUT of page_request
        found.append(
            draw(
                st.sampled_from(
                    [
                        'after: "not-a-cursor"',
                        "first: 1, last: 1",
                        f'last: 1, after: "{CURSORS[0]}"',
                        *(
                            (draw(_first(doc, EDGE_FIRSTS)), "last: 101")
                            if root
                            else ("first: -1",)
                        ),
                    ]
                )
            )
        )
    if draw(st.booleans()):
        found.append(f"orderBy: {draw(st.sampled_from(['CREATED_AT_ASC', 'CREATED_AT_DESC']))}")
    return [argument for argument in found if argument]


@st.composite
def _run_filter(draw: st.DrawFn, doc: Document) -> str:
    kind = draw(
        st.sampled_from(["", "", "", "status", "created", "ids", "started", "inverted", "bad-id"])
    )
    if kind == "status":
        statuses = draw(
            st.lists(
                st.sampled_from(["PENDING", "RUNNING", "SUCCESS", "ERROR", "CANCELLED"]),
                min_size=1,
                max_size=2,
            )
        )
        return f"filter: {{status: [{', '.join(statuses)}]}}"
    if kind == "created":
        return f'filter: {{createdAt: {{gte: "{draw(st.sampled_from(STAMPS))}"}}}}'
    if kind == "started":
        return f'filter: {{startedAt: {{lt: "{STAMPS[-1]}"}}, completedAt: {{gt: "{STAMPS[0]}"}}}}'
    if kind == "inverted":
        return f'filter: {{createdAt: {{gt: "{STAMPS[1]}", lt: "{STAMPS[0]}"}}}}'
    if kind == "bad-id":
        return 'filter: {agentId: ["run_00000000000000000000"]}'
    if kind == "ids":
        runs = doc.ids["run"][:3]
        return f"filter: {{id: {doc.variable('[ID!]', runs)}}}"
    return ""


def _arguments(arguments: list[str]) -> str:
    return f"({', '.join(arguments)})" if arguments else ""


@st.composite
def _connection(
    draw: st.DrawFn, doc: Document, name: str, node: str, depth: int, root: bool
) -> tuple[str, str]:
    """The arguments and the selection of a connection field."""
    arguments = draw(_page_arguments(doc, root))
    if node == "Run":
        arguments.append(draw(_run_filter(doc)))
    if name == "threads" and draw(st.booleans()):
        agents = draw(st.sampled_from([doc.ids["agent"][:2], ["agent_bad"], []]))
        arguments.append(f"agentId: {doc.variable('[ID!]', agents)}")
    parts: list[str] = []
    for part in draw(
        st.lists(
            st.sampled_from(["edges", "pageInfo", "totalCount", "__typename"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    ):
        if part == "edges":
            inner = ["cursor"] if draw(st.booleans()) else []
            inner.append(f"node {draw(selection(doc, node, depth - 1))}")
            parts.append(f"edges {{ {' '.join(inner)} }}")
        elif part == "pageInfo":
            info = draw(
                st.lists(
                    st.sampled_from(
                        ["hasNextPage", "hasPreviousPage", "startCursor", "endCursor", "__typename"]
                    ),
                    min_size=1,
                    max_size=5,
                    unique=True,
                )
            )
            parts.append(f"pageInfo {{ {' '.join(info)} }}")
        else:
            parts.append(part)
    return _arguments([a for a in arguments if a]), f"{{ {' '.join(parts)} }}"


@st.composite
def _field(
    draw: st.DrawFn, doc: Document, type_name: str, name: str, definition: GraphQLField, depth: int
) -> str | None:
    named = get_named_type(definition.type)
    if not is_leaf_type(named) and depth <= 0:
        return None
    alias = f"{doc.name('a')}: " if draw(st.integers(0, 5)) == 0 else ""
    condition = draw(_condition(doc))
    head = f"{alias}{name}{condition}"
    if is_leaf_type(named):
        return head
    if named.name.endswith("Connection"):
        node = named.name.removesuffix("Connection")
        arguments, body = draw(_connection(doc, name, node, depth, False))
        return f"{alias}{name}{arguments}{condition} {body}"
    return f"{head} {draw(selection(doc, named.name, depth - 1))}"


@st.composite
def selection(draw: st.DrawFn, doc: Document, type_name: str, depth: int) -> str:
    """A selection set on the type, `depth` object levels deep at most."""
    fields = _fields(type_name)
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=5, unique=True))
    parts = [
        part
        for name in names
        if (part := draw(_field(doc, type_name, name, fields[name], depth))) is not None
    ]
    if not parts or draw(st.integers(0, 4)) == 0:
        parts.append("__typename")
    if draw(st.integers(0, 6)) == 0:
        parts.append(parts[0])  # the same field twice: merged
    if type_name == "Node":
        for concrete in draw(st.lists(st.sampled_from(NODE_TYPES), max_size=3, unique=True)):
            parts.append(f"... on {concrete} {draw(selection(doc, concrete, depth))}")
    elif depth > 0 and draw(st.integers(0, 5)) == 0:
        fragment = doc.name("F")
        body = draw(selection(doc, type_name, max(depth - 1, 0)))
        doc.fragments.append(f"fragment {fragment} on {type_name} {body}")
        parts.append(f"...{fragment}{draw(_condition(doc))}")
    elif depth > 0 and draw(st.integers(0, 5)) == 0:
        condition = draw(_condition(doc))
        parts.append(
            f"... on {type_name}{condition} {draw(selection(doc, type_name, max(depth - 1, 0)))}"
        )
    return "{ " + " ".join(parts) + " }"


def _id_of(draw: st.DrawFn, doc: Document, kinds: list[str]) -> str:
    choice = draw(st.sampled_from(["real", "real", "real", "missing", "malformed"]))
    if choice == "malformed":
        return "nope"
    kind = draw(st.sampled_from(kinds))
    if choice == "missing":
        return f"{kind}_00000000000000000000"
    return draw(st.sampled_from(doc.ids[kind]))


@st.composite
def _root(draw: st.DrawFn, doc: Document, depth: int) -> str:
    name = draw(
        st.sampled_from(
            [
                "runs",
                "runs",
                "agents",
                "threads",
                "run",
                "thread",
                "agent",
                "messageGroup",
                "actor",
                "node",
                "nodes",
                "__typename",
            ]
        )
    )
    alias = f"{doc.name('r')}: " if draw(st.integers(0, 3)) == 0 or name in doc.roots else ""
    doc.roots.add(name)
    condition = draw(_condition(doc))
    if name == "__typename":
        return f"{alias}__typename{condition}"
    if name in ("runs", "agents", "threads"):
        node = {"runs": "Run", "agents": "Agent", "threads": "Thread"}[name]
        arguments, body = draw(_connection(doc, name, node, depth, True))
        return f"{alias}{name}{arguments}{condition} {body}"
    if name == "nodes":
        count = draw(st.sampled_from([1, 3, 5, 101]))
        ids = [_id_of(draw, doc, list(KINDS.values())) for _ in range(min(count, 5))]
        ids = (ids * 101)[:count]
        argument = doc.variable("[ID!]!", ids)
        return f"{alias}nodes(ids: {argument}){condition} {draw(selection(doc, 'Node', depth))}"
    if name == "node":
        node_id = _id_of(draw, doc, list(KINDS.values()))
        argument = doc.variable("ID!", node_id)
        return f"{alias}node(id: {argument}){condition} {draw(selection(doc, 'Node', depth))}"
    type_name = {
        "run": "Run",
        "thread": "Thread",
        "agent": "Agent",
        "messageGroup": "MessageGroup",
        "actor": "Actor",
    }[name]
    object_id = _id_of(draw, doc, [KINDS[type_name]] * 4 + ["run"])
    literal = f'"{object_id}"' if draw(st.booleans()) else doc.variable("ID!", object_id)
    return f"{alias}{name}(id: {literal}){condition} {draw(selection(doc, type_name, depth))}"


@st.composite
def operations(draw: st.DrawFn, ids: dict[str, list[str]]) -> Operation:
    doc = Document(ids)
    depth = draw(st.integers(1, 4))
    roots = [draw(_root(doc, depth)) for _ in range(draw(st.integers(1, 3)))]
    return Operation(doc.text("{ " + " ".join(roots) + " }"), doc.values())
