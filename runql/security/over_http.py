"""strawberry's ASGI view, made to follow the GraphQL-over-HTTP spec.

- POST bodies must be JSON in UTF-8 (415 otherwise), read by runql.security.strict_json (400
  for bad UTF-8, a key twice, nesting over RUNQL_MAX_BODY_DEPTH), and a JSON object whose
  `query` and `operationName` are strings or null (400 otherwise); websocket messages are read
  by the same parser;
- GET runs queries only: a mutation is 405 with `Allow: POST`, and nothing runs;
- responses are `application/graphql-response+json` when the client accepts it, with the
  spec's status codes (see runql.security.media), else `application/json`;
- every refusal of the HTTP layer is a GraphQL error body with a code, not plain text.
"""

from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.http.typevars import Context, RootValue
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from runql.security.media import (
    JSON,
    content_type_header,
    is_json_request,
    negotiate,
    status_of,
    without_data_on_request_error,
)
from runql.security.responses import code_of, graphql_error_response
from runql.security.strict_json import MalformedJson, parse_json
from runql.settings import Settings

NOT_JSON = (
    "send the operation as JSON in UTF-8, with Content-Type: application/json "
    "(or application/graphql-response+json)"
)
NOT_AN_OBJECT = 'the request body must be a JSON object such as {"query": "{ __typename }"}'
GET_MUTATION = "GET runs queries only: send mutations with POST"
SUBSCRIPTION = (
    "a subscription needs a stream: open this URL as a websocket (graphql-transport-ws "
    "or graphql-ws), or POST with Accept: text/event-stream (graphql-sse) or "
    'multipart/mixed;subscriptionSpec="1.0" (Apollo Client)'
)
NO_QUERY = "No GraphQL query found in the request"
PARAMETERS: dict[str, tuple[type, str]] = {
    "query": (str, "a string"),
    "operationName": (str, "a string"),
    "variables": (dict, "an object"),
    "extensions": (dict, "an object"),
}


def _check_parameters(body: dict[str, Any]) -> None:
    """400 for the first parameter of a wrong type (one loop: every request passes here)."""
    for name, (kind, described) in PARAMETERS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise HTTPException(
                400, f"the operation's `{name}` must be {described} or null, if provided"
            )


def request_data(body: object, protocol: GraphQLRequestProtocol) -> GraphQLRequestData:
    """A POST body's operation, each parameter checked (400 for a wrong type)."""
    if not isinstance(body, dict):
        raise HTTPException(400, NOT_AN_OBJECT)
    _check_parameters(body)
    return GraphQLRequestData(
        query=body.get("query"),
        variables=body.get("variables"),
        operation_name=body.get("operationName"),
        extensions=body.get("extensions"),
        protocol=protocol,
    )


def allowed_over_http(method: str) -> set[OperationType]:
    return (
        {OperationType.QUERY} if method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
    )


def refusal(operation_type: OperationType, method: str) -> HTTPException:
    if operation_type is OperationType.SUBSCRIPTION:
        return HTTPException(400, SUBSCRIPTION)
    return HTTPException(405, GET_MUTATION)


def http_error_response(error: HTTPException, request: Request) -> Response:
    headers = {}
    if error.status_code == 405:
        headers["Allow"] = "POST" if request.method == "GET" else "GET, POST"
    return graphql_error_response(
        error.status_code,
        code_of(error.status_code),
        error.reason,
        media_type=negotiate(request.headers.get("accept")),
        headers=headers,
    )


class GraphQLOverHTTP(GraphQL[Context, RootValue]):
    max_body_depth = Settings().max_body_depth  # the endpoint sets the one of its settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = http_error_response(error, request)
        await response(scope, receive, send)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method != "POST":
            return await super().parse_http_body(request)
        if not is_json_request(request.content_type):
            raise HTTPException(415, NOT_JSON)
        transport = self._get_stream_transport_from_headers(request.headers)
        return request_data(
            self.parse_json(await request.get_body()), transport.protocol if transport else "http"
        )

    def decode_json(self, data: str | bytes) -> object:
        """Bodies, GET's `variables` and `extensions`, and websocket messages (a MalformedJson
        is a JSONDecodeError, which the websocket handlers refuse as not JSON)."""
        return parse_json(data, self.max_body_depth)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except MalformedJson as error:
            raise HTTPException(400, str(error)) from None

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: RootValue | None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, but for the operation types allowed: no subscription over plain HTTP
        (strawberry would run it as a query and fail), no mutation over GET."""
        method = request_adapter.method
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed_over_http(method),
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            raise refusal(error.operation_type, method) from None
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from None
        except MissingQueryError:
            raise HTTPException(400, NO_QUERY) from None

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiate(request.headers.get("accept"))
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        return cast(
            GraphQLHTTPResponse, without_data_on_request_error(cast(dict[str, Any], response))
        )

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = content_type_header(media_type)
        if not sub_response.status_code and isinstance(response_data, dict):
            response.status_code = status_of(response_data, media_type)
        return response
