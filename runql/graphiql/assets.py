"""GraphiQL's bundled files, built by `make graphiql` (web/build.mjs) into static/ with a
manifest. Their names carry their content hash, so they are cached for a year, immutable."""

import json
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
STATIC_ROUTE = "/graphql/static/{name}"
STATIC_PREFIX = "/graphql/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Bundle:
    directory: Path
    script: str
    stylesheet: str

    def path_of(self, name: str) -> Path | None:
        """The file behind a served name; only the manifest's names are served."""
        return self.directory / name if name in (self.script, self.stylesheet) else None


def _plain_name(value: object) -> str | None:
    if isinstance(value, str) and value and Path(value).name == value:
        return value
    return None


def load_bundle(directory: Path = STATIC_DIR) -> Bundle | None:
    """The built bundle, or None when `make graphiql` has not been run."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    script, stylesheet = (
        _plain_name(manifest.get("script")),
        _plain_name(manifest.get("stylesheet")),
    )
    if script is None or stylesheet is None:
        return None
    return Bundle(directory, script, stylesheet)


def accepts_gzip(accept_encoding: str) -> bool:
    for entry in accept_encoding.lower().split(","):
        coding, _, params = entry.strip().partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def asset_response(bundle: Bundle | None, name: str, accept_encoding: str) -> Response:
    path = bundle.path_of(name) if bundle is not None else None
    if path is None or not path.is_file():
        raise HTTPException(404)  # answered as JSON by runql.security.handlers
    headers = {
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    compressed = path.with_name(path.name + ".gz")
    if accepts_gzip(accept_encoding) and compressed.is_file():
        return FileResponse(
            compressed, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"}
        )
    return FileResponse(path, media_type=media_type, headers=headers)


async def serve_asset(request: Request) -> Response:
    """GET /graphql/static/{name}: public, like the page that loads it, and only served when
    the page is (RUNQL_GRAPHIQL; on in development)."""
    enabled = request.app.state.settings.graphiql_enabled
    return asset_response(
        load_bundle() if enabled else None,
        request.path_params["name"],
        request.headers.get("accept-encoding", ""),
    )
