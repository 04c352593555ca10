"""JSON responses encoded with orjson (runql.encoding): keys in the order they were built."""

from typing import Any

from starlette.responses import Response

from runql.encoding import dumps


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
