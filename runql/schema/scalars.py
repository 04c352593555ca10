"""Custom scalars: `DateTime` as the spec writes it (ISO 8601, UTC, milliseconds, `Z`)."""

from datetime import UTC, datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition

from runql.storage.types import format_instant


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a DateTime is an ISO 8601 string, such as 2025-01-01T00:00:00.000Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time, such as 2025-01-01T00:00:00.000Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone: end it with Z or an offset like +02:00")
    return parsed.astimezone(UTC)


DateTime: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An instant in ISO 8601 form, always sent in UTC with milliseconds "
    "(2025-01-01T00:00:00.000Z). Inputs must carry a zone (Z or an offset).",
    specified_by_url="https://scalars.graphql.org/andimarek/date-time",
    serialize=format_instant,
    parse_value=parse_datetime,
)

SCALARS: dict[object, ScalarDefinition] = {datetime: DateTime}
