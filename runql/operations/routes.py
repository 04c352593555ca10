"""The operations endpoints, none behind an API key: /healthz, /readyz and /metrics (which
RUNQL_METRICS_TOKEN can put behind a scrape token)."""

from starlette.routing import Route

from runql.operations.health import healthz, readyz
from runql.operations.scrape import metrics


def operations_routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
