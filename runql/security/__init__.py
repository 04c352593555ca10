"""Limits and hardening: what keeps one client from costing runql more than its share.

Query limits (depth, aliases, tokens, cost) and the introspection switch are validation rules
and parse options (`extension`, `rules`); the execution timeout is `timeout`; the request body
cap and the per-key rate limit (`body`, `ratelimit`) are applied by the edge (runql/edge.py);
`over_http` makes the GraphQL view follow the GraphQL-over-HTTP spec (media types, status
codes, GET and POST).
"""
