"""GraphiQL as HTTP serves it: a never-cached page naming runql's own content-hashed files,
served without an API key, cached for a year, gzipped on request; the dev key only in
development."""

import gzip
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from runql.app import create_app
from runql.graphiql.assets import STATIC_DIR, load_bundle
from runql.graphiql.page import FEED, graphiql_page
from runql.settings import Environment, Settings
from runql.storage.database import Database

HTML = {"Accept": "text/html"}
DEV_KEY = "runql_sk_thedevelopmentkeyoftheseteststhere"


def _settings(tmp_path: Path, env: Environment, graphiql: bool | None = None) -> Settings:
    key_file = tmp_path / "dev-key"
    key_file.write_text(DEV_KEY + "\n")
    return Settings(env=env, workers=0, dev_key_file=str(key_file), graphiql=graphiql)


@asynccontextmanager
async def _client(tmp_path: Path, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Without an API key. Serving GraphiQL reads no database: this one is never even made."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    transport = httpx.ASGITransport(app=create_app(settings, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://runql.test") as client:
        yield client
    await database.dispose()


@pytest.fixture
async def development(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(tmp_path, _settings(tmp_path, Environment.DEVELOPMENT)) as client:
        yield client


@pytest.fixture
async def production(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Production with RUNQL_GRAPHIQL=1."""
    settings = _settings(tmp_path, Environment.PRODUCTION, graphiql=True)
    async with _client(tmp_path, settings) as client:
        yield client


def _config(page: str) -> dict[str, object]:
    found = re.search(
        r'<script id="runql-graphiql-config" type="application/json">(.*?)</script>', page, re.S
    )
    assert found, page
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def _linked(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def test_the_bundle_is_built_with_graphiql_and_graphql_ws() -> None:
    bundle = load_bundle()
    assert bundle is not None, "`make graphiql` builds it"
    script = (STATIC_DIR / bundle.script).read_text()
    assert re.fullmatch(r"graphiql-[A-Z0-9]{8}\.js", bundle.script)
    assert re.fullmatch(r"graphiql-[A-Z0-9]{8}\.css", bundle.stylesheet)
    assert "graphql-transport-ws" in script  # the websocket client for subscriptions
    assert ".graphiql-container" in (STATIC_DIR / bundle.stylesheet).read_text()


async def test_the_page_loads_only_runql_s_own_files(production: httpx.AsyncClient) -> None:
    page = await production.get("/graphql", headers=HTML)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    bundle = load_bundle()
    assert bundle is not None
    assert _linked(page.text) == [
        "data:,",
        f"/graphql/static/{bundle.stylesheet}",
        f"/graphql/static/{bundle.script}",
    ]
    for outside in ("http://", "https://", "//unpkg", "cdn"):
        assert outside not in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy


async def test_the_page_is_never_cached_and_its_files_are_immutable(
    production: httpx.AsyncClient,
) -> None:
    page = await production.get("/graphql", headers=HTML)
    assert page.headers["cache-control"] == "no-cache"

    for name in _linked(page.text)[1:]:
        asset = await production.get(name)  # no API key: the files are as public as the page
        assert asset.status_code == 200, name
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
        expected = "text/css" if name.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"] == f"{expected}; charset=utf-8"
        assert asset.content == (STATIC_DIR / Path(name).name).read_bytes()


async def test_files_are_gzipped_for_browsers_that_accept_it(
    production: httpx.AsyncClient,
) -> None:
    bundle = load_bundle()
    assert bundle is not None
    url = f"/graphql/static/{bundle.script}"
    original = (STATIC_DIR / bundle.script).read_bytes()

    zipped = await production.get(url, headers={"Accept-Encoding": "gzip"})
    plain = await production.get(url, headers={"Accept-Encoding": "identity"})
    refused = await production.get(url, headers={"Accept-Encoding": "gzip;q=0, br"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(original) / 2
    assert zipped.content == original  # httpx decodes it
    assert zipped.headers["vary"] == "Accept-Encoding"
    for response in (plain, refused):
        assert "content-encoding" not in response.headers
        assert response.content == original
    assert gzip.decompress((STATIC_DIR / f"{bundle.script}.gz").read_bytes()) == original


@pytest.mark.parametrize(
    "name", ["manifest.json", "graphiql.js", "..%2F..%2Fsettings.py", "graphiql-AAAAAAAA.js"]
)
async def test_only_the_bundle_s_files_are_served(production: httpx.AsyncClient, name: str) -> None:
    response = await production.get(f"/graphql/static/{name}")

    assert response.status_code == 404
    assert "runql" not in response.text


async def test_in_development_the_page_starts_with_the_dev_key_and_the_feed(
    development: httpx.AsyncClient,
) -> None:
    page = await development.get("/graphql", headers=HTML)

    assert _config(page.text) == {
        "endpoint": "/graphql",
        "query": FEED.read_text(),
        "variables": {"first": 5},
        "headers": {"Authorization": f"Bearer {DEV_KEY}"},
    }
    assert page.headers["cache-control"] == "no-cache, no-store"  # it holds a key


async def test_in_production_the_page_holds_no_key(production: httpx.AsyncClient) -> None:
    page = await production.get("/graphql", headers=HTML)

    assert _config(page.text)["headers"] is None
    assert DEV_KEY not in page.text
    assert "Bearer" not in page.text


async def test_in_production_graphiql_is_served_only_when_enabled(tmp_path: Path) -> None:
    bundle = load_bundle()
    assert bundle is not None
    async with _client(tmp_path, _settings(tmp_path, Environment.PRODUCTION)) as client:
        page = await client.get("/graphql", headers=HTML)
        script = await client.get(f"/graphql/static/{bundle.script}")

    assert page.status_code == 404
    assert script.status_code == 404


async def test_the_page_cannot_be_closed_early_by_what_it_embeds(tmp_path: Path) -> None:
    settings = _settings(tmp_path, Environment.DEVELOPMENT)
    (tmp_path / "dev-key").write_text("</script><script>alert(1)</script>\n")
    request = Request(
        {"type": "http", "method": "GET", "path": "/graphql", "headers": [], "query_string": b""}
    )

    page = bytes(graphiql_page(request, settings).body).decode()

    assert "<script>alert(1)" not in page
    assert _config(page)["headers"] == {
        "Authorization": "Bearer </script><script>alert(1)</script>"
    }


def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    request = Request(
        {"type": "http", "method": "GET", "path": "/graphql", "headers": [], "query_string": b""}
    )

    page = graphiql_page(request, Settings(), static_dir=tmp_path)

    assert page.status_code == 503
    body = bytes(page.body).decode()
    assert "make graphiql" in body
    assert str(tmp_path) not in body
