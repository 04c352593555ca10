"""Development only: a key made for the developer, which GraphiQL starts with
(runql/graphiql/page.py)."""

from pathlib import Path

from runql.auth.keys import authenticate, create_key
from runql.settings import Settings
from runql.storage.database import Database


async def valid_or_new(database: Database, secret: str | None) -> tuple[str, bool]:
    """The development key if it still opens the database, else a new one (and True)."""
    if await authenticate(database, secret) is not None:
        assert secret is not None
        return secret, False
    return (await create_key(database, "development")).secret, True


def read_dev_key(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def write_dev_key(path: Path, secret: str) -> None:
    path.write_text(secret + "\n")
    path.chmod(0o600)


def dev_key(settings: Settings) -> str | None:
    return read_dev_key(Path(settings.dev_key_file)) if settings.is_development else None
