"""Secret API keys (`runql_sk_` + 32 characters): made once, shown once, stored as a hash."""

import hashlib
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from runql.auth.revocation import Revocations, announce
from runql.errors import NotFound
from runql.ids import Kind, new_id
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, ApiKeyRow, OrganizationRow
from runql.storage.types import utcnow
from runql.storage.writes import insert_rows

PREFIX = "runql_sk_"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 32
DEFAULT_ORG_NAME = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key and the organization it opens."""

    org_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class NewKey:
    row: ApiKeyRow
    secret: str


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def lookup_hash(secret: str | None) -> str | None:
    """The hash to look a secret up by; None for what cannot be a key."""
    if secret is None or not secret.startswith(PREFIX):
        return None
    return secret_hash(secret)


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` value, if that is what it is."""
    if not authorization:
        return None
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def organization(database: Database, name: str) -> OrganizationRow:
    """The organization with this name, made when there is none."""
    async with database.write() as session:
        found = (
            (
                await session.execute(
                    select(OrganizationRow).where(col(OrganizationRow.name) == name)
                )
            )
            .scalars()
            .first()
        )
        if found is not None:
            return found
        org = OrganizationRow(
            id=DEFAULT_ORG_ID if name == DEFAULT_ORG_NAME else new_id(Kind.ORGANIZATION), name=name
        )
        await insert_rows(session, [org])
        return org


async def create_key(database: Database, name: str, org_name: str = DEFAULT_ORG_NAME) -> NewKey:
    org = await organization(database, org_name)
    secret = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
    row = ApiKeyRow(
        id=new_id(Kind.API_KEY),
        org_id=org.id,
        name=name,
        secret_hash=secret_hash(secret),
        hint=secret[: len(PREFIX) + 4] + "…",
    )
    async with database.write() as session:
        await insert_rows(session, [row])
    return NewKey(row, secret)


async def list_keys(database: Database) -> list[tuple[ApiKeyRow, str]]:
    """Every key with its organization's name, oldest first."""
    async with database.read() as session:
        rows = (
            await session.execute(
                select(ApiKeyRow, col(OrganizationRow.name))
                .join(OrganizationRow, col(OrganizationRow.id) == col(ApiKeyRow.org_id))
                .order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))
            )
        ).all()
    return [(key, org_name) for key, org_name in rows]


async def revoke_key(
    database: Database, key_id: str, revocations: Revocations | None = None
) -> ApiKeyRow:
    """Revoke the key; every process hears of it (at once the one whose `revocations` this
    is), and lets go what the key opened."""
    async with database.write() as session:
        key = await session.get(ApiKeyRow, key_id)
        if key is None:
            raise NotFound(f"there is no key {key_id}", field="id")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
        await announce(session, key.id)
    if revocations is not None:
        revocations.revoked(key.id)
    return key


async def authenticate(database: Database, secret: str | None) -> Principal | None:
    """The principal a secret stands for; None for a missing, unknown or revoked key."""
    hashed = lookup_hash(secret)
    return None if hashed is None else await principal_by_hash(database, hashed)


async def principal_by_hash(database: Database, hashed: str) -> Principal | None:
    """The principal of the key with this secret hash, if it is there and not revoked."""
    async with database.read() as session:
        key = (
            (await session.execute(select(ApiKeyRow).where(col(ApiKeyRow.secret_hash) == hashed)))
            .scalars()
            .first()
        )
    if key is None or key.revoked_at is not None:
        return None
    return Principal(key.org_id, key.id)
