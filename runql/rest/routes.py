"""The REST endpoints of the spec: `GET /runs`, `POST /runs`, `GET /runs/{runId}`; and the
public `GET /openapi.json`. Every read and write is the caller's organization's."""

from sqlalchemy import select
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runql.auth.asgi import UNAUTHENTICATED, principal_of
from runql.errors import NotFound
from runql.ids import Kind, require
from runql.lifecycle.runs import create_run
from runql.rest.body import (
    body_fields,
    body_limit,
    idempotency_key,
    read_body,
    rest_name,
    run_request,
)
from runql.rest.documents import list_document, run_document
from runql.rest.errors import MethodNotAllowed, Unauthenticated, rest_errors
from runql.rest.graph import load_graph
from runql.rest.json import JsonResponse
from runql.rest.listing import list_request
from runql.rest.openapi import openapi_document
from runql.settings import Settings
from runql.storage import reads
from runql.storage.database import Database
from runql.storage.pages import fetch_page
from runql.storage.tables import IdempotencyKeyRow, RunRow

EVERY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # 405s are ours
ENDPOINTS = "GET /runs, POST /runs, GET /runs/{runId} and GET /openapi.json"


def _org_of(request: Request) -> str:
    principal = principal_of(request.scope)
    if principal is None:
        raise Unauthenticated(UNAUTHENTICATED)
    return principal.org_id


def _allow(request: Request, *methods: str) -> None:
    allowed = (*methods, "HEAD") if "GET" in methods else methods
    if request.method not in allowed:
        raise MethodNotAllowed(request.method, methods)


class RunsApi:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    async def runs(self, request: Request) -> Response:
        _allow(request, "GET", "POST")
        if request.method == "POST":
            return await self.create(request)
        return await self.list_runs(request)

    async def list_runs(self, request: Request) -> Response:
        org_id = _org_of(request)
        wanted = list_request(request.query_params)
        conditions = [col(RunRow.org_id) == org_id, *wanted.filter.conditions()]
        async with self.database.read() as session:
            page = await fetch_page(session, RunRow, conditions, wanted.page)
            graph = await load_graph(session, page.rows, org_id)
        return JsonResponse(list_document(page, graph))

    async def run(self, request: Request) -> Response:
        _allow(request, "GET")
        org_id = _org_of(request)
        run_id = request.path_params["run_id"]
        require(run_id, Kind.RUN, "runId")
        async with self.database.read() as session:
            [run] = await reads.rows_by_id(session, RunRow, [run_id], org_id)
            if run is None:
                raise NotFound(f"there is no run {run_id}", field="runId")
            graph = await load_graph(session, [run], org_id)
        return JsonResponse(run_document(run, graph))

    async def create(self, request: Request) -> Response:
        org_id = _org_of(request)
        raw = await read_body(request, body_limit(self.settings.max_content_bytes))
        fields = body_fields(raw, request.headers.get("content-type"), self.settings.max_body_depth)
        key = idempotency_key(request.headers.getlist("idempotency-key"))
        wanted = run_request(fields, key)
        earlier = await self._run_of_key(org_id, key)
        run = await create_run(
            self.database,
            org_id,
            wanted,
            max_content_bytes=self.settings.max_content_bytes,
            json_caps=self.settings.json_caps,
            names=rest_name,
        )
        async with self.database.read() as session:
            graph = await load_graph(session, [run], org_id)
        status = 200 if run.id == earlier else 201
        return JsonResponse(
            run_document(run, graph), status_code=status, headers={"Location": f"/runs/{run.id}"}
        )

    async def _run_of_key(self, org_id: str, key: str | None) -> str | None:
        """The run an idempotency key already made, if any: its replay is a 200, not a 201."""
        if key is None:
            return None
        statement = select(col(IdempotencyKeyRow.run_id)).where(
            col(IdempotencyKeyRow.org_id) == org_id, col(IdempotencyKeyRow.key) == key
        )
        async with self.database.read() as session:
            return (await session.execute(statement)).scalar_one_or_none()


async def no_such_endpoint(request: Request) -> Response:
    raise NotFound(f"there is no endpoint {request.url.path}; the endpoints are {ENDPOINTS}")


async def openapi(request: Request) -> Response:
    _allow(request, "GET")
    return JsonResponse(openapi_document())


def rest_routes(database: Database, settings: Settings) -> list[BaseRoute]:
    api = RunsApi(database, settings)
    return [
        Route("/runs", rest_errors(api.runs), methods=EVERY_METHOD),
        Route("/runs/{run_id}", rest_errors(api.run), methods=EVERY_METHOD),
        Route("/runs/{path:path}", rest_errors(no_such_endpoint), methods=EVERY_METHOD),
        Route("/openapi.json", rest_errors(openapi), methods=EVERY_METHOD),
    ]
