"""Stored values as the standard executor serializes them, from raw column values.

Statements run on the raw driver (storage.raw), without SQLAlchemy's result processing: SQLite
gives DateTime and JSON columns as text; PostgreSQL (asyncpg) gives datetimes, and JSON already
decoded by the codec SQLAlchemy's dialect sets on each connection (text without it).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLEnumType, GraphQLLeafType

from runql.schema.execution import float_output
from runql.storage.pages import Cursor
from runql.storage.raw import json_value
from runql.storage.types import format_instant, instant

Convert = Callable[[Any], Any]

# How SQLAlchemy stores a DateTime on SQLite: naive UTC, always with microseconds.
_STORED = len("2025-01-01 00:00:00.000000")


def _stored(value: Any) -> bool:
    """Whether a raw value is a stored text of the usual shape (2025-01-01 00:00:00.000000)."""
    return type(value) is str and len(value) == _STORED and value[10] == " " and value[19] == "."


class UnexpectedValue(ValueError):
    """A stored value the fast path does not serialize as the standard path would."""


def stamp(value: Any) -> str | None:
    """An instant written in the DateTime scalar's form (2025-01-01T00:00:00.000Z). The fast
    path reads columns raw, so a stored text of the usual shape is rewritten without parsing
    it; anything else goes through storage.types.format_instant, the scalar's own function."""
    if value is None:
        return None
    if type(value) is str and len(value) == _STORED and value[10] == " " and value[19] == ".":
        # (_stored, written out: a call less a value)
        return f"{value[:10]}T{value[11:23]}Z"  # isoformat(timespec=ms) truncates too
    if type(value) is datetime and value.tzinfo is UTC:  # PostgreSQL's timestamptz
        return f"{value.isoformat(timespec='milliseconds')[:-6]}Z"  # less its +00:00
    return format_instant(instant(value))


def decoded(value: Any) -> Any:
    """A JSON column's value, as the column type's json.loads would give it."""
    return json_value(value) if isinstance(value, str | bytes) else value


def cursor(created_at: Any, row_id: str) -> str:
    """Cursor(instant(created_at), row_id).encode(); a stored text of the usual shape is
    rewritten as the aware UTC datetime's isoformat would write it, without parsing it (which
    leaves out the fraction when it is zero), and a UTC datetime (PostgreSQL's timestamptz) is
    written as it is, without a Cursor made for it."""
    if _stored(created_at):
        fraction = created_at[19:]
        written = created_at[11:19] if fraction == ".000000" else created_at[11:]
        return Cursor.encoded(f"{created_at[:10]}T{written}+00:00", row_id)
    if type(created_at) is datetime and created_at.tzinfo is UTC:
        return Cursor.encoded(created_at.isoformat(), row_id)
    return Cursor(instant(created_at), row_id).encode()


class EnumNames:
    """Stored value -> GraphQL name ("success" -> "SUCCESS"), by the type's own serialize;
    `names` holds those found (a compiled build reads it in place, plan.compiled_build)."""

    def __init__(self, graphql_type: GraphQLEnumType) -> None:
        self.graphql_type = graphql_type
        self.names: dict[Any, str] = {}

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        found = self.names.get(value)
        if found is None:
            try:
                found = self.names[value] = self.graphql_type.serialize(value)
            except Exception as error:  # the standard path fails the field: let it
                name = self.graphql_type.name
                raise UnexpectedValue(f"{name} cannot represent {value!r}") from error
        return found


def enum_names(graphql_type: GraphQLEnumType) -> Convert:
    return EnumNames(graphql_type)


def inline_convert(convert: Convert, read: str, name: str, names: dict[str, Any]) -> str:
    """An expression for `convert(read)`, the convert being `names[name]`, without its call
    where the value is the usual one: an enum's name already found, a stored instant of the
    usual shape (what stamp does, written out); what it reads is added to `names`."""
    if isinstance(convert, EnumNames):  # a name is never empty: `or` calls it for the rest
        names[f"{name}_names"] = convert.names
        return f"{name}_names.get({read}) or {name}({read})"
    if convert is stamp:
        value = f"{name}_value"
        return (
            f'f"{{{value}[:10]}}T{{{value}[11:23]}}Z" if type({value} := {read}) is str and'
            f' len({value}) == {_STORED} and {value}[10] == " " and {value}[19] == "."'
            f" else {name}({value})"
        )
    return f"{name}({read})"


def leaf(graphql_type: GraphQLLeafType) -> Convert | None:
    """How a column's value becomes the leaf's output; None: as it is."""
    name = graphql_type.name
    if name == "DateTime":
        return stamp
    if name == "JSON":
        return decoded
    if isinstance(graphql_type, GraphQLEnumType):
        return enum_names(graphql_type)
    if name == "Float":
        return float_output  # as the standard executor writes it: whole amounts as integers
    if name in ("String", "ID"):
        return None  # text columns: str already, which serialize returns as it is
    return graphql_type.serialize


def required(convert: Convert | None) -> Convert:
    """For a non-null field over a nullable column: null would be an error, so not ours."""

    def check(value: Any) -> Any:
        if value is None:
            raise UnexpectedValue("null in a non-null field")
        return value if convert is None else convert(value)

    return check
