"""strawberry's ParserCache, except that a document that does not parse is left to strawberry.

ParserCache raises the parse error (a syntax error, or the token limit) out of its hook:
`Schema.execute` turns that into a result, but `Schema.stream`, which serves websockets, does
not, so the client got no error and the server logged a traceback. Here a failed parse leaves
the document unset; strawberry parses it again (errors are rare) and reports the error as a
result, on every transport.
"""

from collections.abc import Iterator
from contextlib import suppress

from graphql import GraphQLError
from strawberry.extensions import ParserCache


class QuietParserCache(ParserCache):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield
