"""The GraphiQL page: the bundle's two files and the page's settings in a JSON block. It opens
with the feed query; in development its headers (and so its websocket connection params) carry
the dev key. It loads nothing from anywhere but runql, which its Content-Security-Policy says."""

import json
from html import escape
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from runql.auth.devkey import dev_key
from runql.graphiql.assets import STATIC_DIR, Bundle, load_bundle
from runql.settings import Settings

FEED = Path(__file__).resolve().parents[2] / "queries" / "feed.graphql"
FALLBACK_QUERY = (
    "query Feed($first: Int!) {\n  runs(first: $first) {\n    totalCount\n"
    "    edges { node { id status agent { name } } }\n  }\n}\n"
)
FEED_VARIABLES = {"first": 5}

POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

NOT_BUILT = (
    "<!doctype html><title>GraphiQL is not built</title><p>GraphiQL's files are not "
    "built. Run <code>make graphiql</code> (or <code>make run</code>) and reload.</p>"
)


def feed_query() -> str:
    try:
        return FEED.read_text()
    except OSError:  # an installed package without the repository's queries/
        return FALLBACK_QUERY


def page_config(endpoint: str, settings: Settings) -> dict[str, Any]:
    secret = dev_key(settings)
    return {
        "endpoint": endpoint,
        "query": feed_query(),
        "variables": FEED_VARIABLES,
        "headers": {"Authorization": f"Bearer {secret}"} if secret else None,
    }


def _json_block(value: object) -> str:
    """JSON that cannot end its <script> element early."""
    return (
        json.dumps(value, indent=2)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def render(bundle: Bundle, static_prefix: str, config: dict[str, Any]) -> str:
    script, stylesheet = (
        escape(static_prefix + bundle.script),
        escape(static_prefix + bundle.stylesheet),
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>runql · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{stylesheet}">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script id="runql-graphiql-config" type="application/json">{_json_block(config)}</script>
<script src="{script}" defer></script>
</body>
</html>
"""


def graphiql_page(request: Request, settings: Settings, static_dir: Path = STATIC_DIR) -> Response:
    """GET /graphql from a browser. Never cached: it names the current bundle (and, in
    development, holds the dev key, so it is not even stored)."""
    bundle = load_bundle(static_dir)
    if bundle is None:
        return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    endpoint = request.url.path.rstrip("/") or "/"
    config = page_config(endpoint, settings)
    headers = {
        "Cache-Control": "no-cache, no-store" if config["headers"] else "no-cache",
        "Content-Security-Policy": POLICY,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(render(bundle, f"{endpoint}/static/", config), headers=headers)
