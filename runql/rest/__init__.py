"""The spec's REST API: the same runs, ids and data as GraphQL, in the spec's JSON."""

from runql.rest.routes import rest_routes

__all__ = ["rest_routes"]
