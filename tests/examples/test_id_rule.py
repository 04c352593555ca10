"""The id rule of the shipped documents (queries/*.graphql and those in examples/): every
selection of an object type that has an `id` field selects `id`, so that a normalized cache
(Apollo's InMemoryCache, urql's graphcache) keys every object and merges the documents' views of
it instead of replacing one with another."""

import re
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    is_abstract_type,
    is_composite_type,
    parse,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = build_schema((ROOT / "schema.graphql").read_text())
# A document in an example: a template literal or a triple-quoted string that starts with an
# operation or fragment keyword.
EMBEDDED = re.compile(r'(?:`|""")\s*((?:query|mutation|subscription|fragment)\b.*?)(?:`|""")', re.S)


def _documents() -> dict[str, str]:
    found = {
        f"queries/{path.name}": path.read_text()
        for path in sorted((ROOT / "queries").glob("*.graphql"))
    }
    for path in sorted((ROOT / "examples").iterdir()):
        if path.suffix in {".mjs", ".ts", ".py"}:
            for index, text in enumerate(EMBEDDED.findall(path.read_text())):
                found[f"examples/{path.name}#{index + 1}"] = text
    return found


DOCUMENTS = _documents()


def _applies(schema: GraphQLSchema, condition: str | None, target: GraphQLObjectType) -> bool:
    if condition is None:
        return True
    named = schema.get_type(condition)
    return named is target or (is_abstract_type(named) and schema.is_sub_type(named, target))


def _collect(
    fragments: dict[str, FragmentDefinitionNode],
    selections: SelectionSetNode,
    target: GraphQLObjectType,
    into: dict[str, list[FieldNode]],
) -> None:
    """The fields `selections` asks of an object of type `target`, fragments included, by
    response key."""
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            into.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition.name.value if selection.type_condition else None
            if _applies(SCHEMA, condition, target):
                _collect(fragments, selection.selection_set, target, into)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            if _applies(SCHEMA, fragment.type_condition.name.value, target):
                _collect(fragments, fragment.selection_set, target, into)


def _missing_ids(
    fragments: dict[str, FragmentDefinitionNode],
    selections: SelectionSetNode,
    parent: object,
    path: str,
) -> list[str]:
    targets = SCHEMA.get_possible_types(parent) if is_abstract_type(parent) else [parent]
    missing: list[str] = []
    for target in targets:
        assert isinstance(target, GraphQLObjectType)
        fields: dict[str, list[FieldNode]] = {}
        _collect(fragments, selections, target, fields)
        if "id" in target.fields and not any(
            node.name.value == "id" for node in fields.get("id", [])
        ):
            missing.append(f"{path} ({target.name})")
        for key, nodes in fields.items():
            definition = target.fields.get(nodes[0].name.value)
            if definition is None:  # __typename
                continue
            named = get_named_type(definition.type)
            if is_composite_type(named):
                for node in nodes:
                    assert node.selection_set is not None
                    missing += _missing_ids(fragments, node.selection_set, named, f"{path}.{key}")
    return missing


def missing_ids(document: DocumentNode) -> list[str]:
    """Where `document` selects an object that has an `id` without selecting it."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    missing: list[str] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = SCHEMA.get_root_type(definition.operation)
            name = definition.name.value if definition.name else definition.operation.value
            missing += _missing_ids(fragments, definition.selection_set, root, name)
    return sorted(set(missing))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_selects_id_with_every_object_that_has_one(name: str) -> None:
    document = parse(DOCUMENTS[name])
    assert validate(SCHEMA, document) == []
    assert missing_ids(document) == []


def test_every_example_document_is_found() -> None:
    examples = {name.split("#")[0] for name in DOCUMENTS if name.startswith("examples/")}
    assert examples >= {
        "examples/apollo-client.mjs",
        "examples/urql-client.mjs",
        "examples/graphql-ws.mjs",
        "examples/gql_client.py",
    }


def test_the_rule_finds_an_object_without_id_through_a_fragment() -> None:
    document = parse("""query($id: ID!) { run(id: $id) { id messageGroup { ...Turn } }
      node(id: $id) { id ... on Message { content { parts { id text } } } } }
    fragment Turn on MessageGroup { id messages { actor { id name } } }""")
    assert missing_ids(document) == [
        "query.node.content (MessageContent)",
        "query.run.messageGroup.messages (Message)",
    ]
