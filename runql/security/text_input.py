"""runql.text's rule on GraphQL input: every variable and every string literal of the document,
checked before the operation executes (queries, mutations and subscriptions, over HTTP and
websockets alike), so a refusal runs no resolver and writes nothing.

A variable's fault is named by its path from the variable (`input.metadata.tags[2]` for
`$input`), a literal's by its path from the argument (`input.content.text`).
"""

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectFieldNode,
    ObjectValueNode,
    StringValueNode,
)
from strawberry.extensions import SchemaExtension

from runql.errors import BadUserInput
from runql.text import check_text, check_value


def _literals(node: Node, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) of every string literal under `node`."""
    if isinstance(node, StringValueNode):
        yield path, node.value
        return
    if isinstance(node, ArgumentNode | ObjectFieldNode):
        path = f"{path}.{node.name.value}" if path else node.name.value
        yield from _literals(node.value, path)
        return
    if isinstance(node, ListValueNode):
        for index, item in enumerate(node.values):
            yield from _literals(item, f"{path}[{index}]")
        return
    if isinstance(node, ObjectValueNode):
        for field in node.fields:
            yield from _literals(field, path)
        return
    for key in node.keys:
        child = getattr(node, key, None)
        if isinstance(child, Node):
            yield from _literals(child, "")
        elif isinstance(child, tuple | list):
            for item in child:
                if isinstance(item, Node):
                    yield from _literals(item, "")


def _may_hold_unfit_literal(query: str) -> bool:
    """The lexer refuses lone surrogates and raw NUL in strings but for block strings, and
    takes `\\u0000`: only a document with an escape or a NUL needs its literals walked."""
    return "\\u" in query or "\x00" in query


def check_document(query: str | None, document: DocumentNode | None) -> None:
    if query is None or document is None or not _may_hold_unfit_literal(query):
        return
    for path, value in _literals(document, ""):
        check_text(value, path or "query")


def check_variables(variables: Mapping[str, Any] | None) -> None:
    for name, value in (variables or {}).items():
        check_text(name, "variables")
        check_value(value, name)


def fit_variables(variables: Mapping[str, Any] | None) -> bool:
    """Whether the variables pass the rule (the fast lane hands any that do not to the view,
    which refuses them with the field at fault)."""
    for name, value in (variables or {}).items():
        if not (
            type(value) is str
            and name.isascii()
            and value.isascii()
            and "\x00" not in name
            and "\x00" not in value
        ):
            break
    else:  # only plain ASCII text without NUL, which the rule never refuses
        return True
    try:
        check_variables(variables)
    except BadUserInput:
        return False
    return True


def fit_document(query: str, document: DocumentNode) -> bool:
    try:
        check_document(query, document)
    except BadUserInput:
        return False
    return True


def _refusal(error: BadUserInput) -> GraphQLError:
    extensions: dict[str, Any] = {"code": error.code}
    if error.field is not None:
        extensions["field"] = error.field
    return GraphQLError(error.message, extensions=extensions)


class FitText(SchemaExtension):
    """Refuses an operation whose input holds text runql cannot store or answer with."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        try:
            check_variables(context.variables)
            check_document(context.query, context.graphql_document)
        except BadUserInput as error:
            raise _refusal(error) from None
        yield
