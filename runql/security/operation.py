"""Which operation of a document runs, as the GraphQL spec's GetOperation says: the one
`operationName` names, or the only one when it is null. Several operations and no name is a
request error (BAD_REQUEST), found in validation, so it fails alike on every transport and
either executor, and nothing runs. strawberry would run the first operation.

A name that names no operation was already refused (strawberry's CannotGetOperationTypeError:
400 over HTTP); `unresolved_error` gives it its code on websockets.
"""

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, ValidationRule
from graphql.language import SKIP, VisitorAction
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionContext

BAD_REQUEST = "BAD_REQUEST"


class OneOperationWithoutName(ValidationRule):
    """Added only where no operationName came. Documents with an anonymous operation among
    others are left to graphql-core's LoneAnonymousOperationRule."""

    def enter_document(self, node: DocumentNode, *_args: object) -> VisitorAction:
        operations = [d for d in node.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1 and all(o.name is not None for o in operations):
            names = ", ".join(o.name.value for o in operations if o.name is not None)
            self.report_error(
                GraphQLError(
                    f"The document has {len(operations)} operations ({names}): say which to run "
                    "with operationName.",
                    operations,
                    extensions={"code": BAD_REQUEST},
                )
            )
        return SKIP


class SpecExecutionContext(ExecutionContext):
    """The execution context the Schema makes for every operation."""

    def __post_init__(self, provided_operation_name: str | None) -> None:
        super().__post_init__(provided_operation_name)
        if provided_operation_name is None:
            self.validation_rules = (*self.validation_rules, OneOperationWithoutName)


def unresolved_error(error: GraphQLError, original: CannotGetOperationTypeError) -> GraphQLError:
    """An operationName that names no operation, as a streaming transport (websockets) sends
    it: an `error` message for that operation, with a code."""
    return GraphQLError(
        original.as_http_error_reason(),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        extensions={"code": BAD_REQUEST},
    )
