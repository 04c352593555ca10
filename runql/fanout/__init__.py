"""Shared subscriptions: every socket subscribed to the same operation (same document, variables
and organization) is served by one execution, whose results are encoded once and written to
each socket. A subscriber replays what it missed by itself, then joins the shared stream at
the point it has reached. Subscriptions over HTTP (Apollo's multipart protocol, graphql-sse)
are in http_streams.py."""
