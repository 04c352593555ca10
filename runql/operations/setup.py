"""What create_app turns on for a database: SQL statements counted per request, and SQL and
operation spans when RUNQL_OTEL=1."""

from runql.operations import tracing
from runql.operations.sql import count_statements
from runql.settings import Settings
from runql.storage.database import Database


def instrument(database: Database, settings: Settings) -> None:
    count_statements(database.engine)
    if settings.otel:
        if not tracing.is_enabled():
            tracing.enable(tracing.provider_from_env())
        tracing.trace_sql(database.engine)
