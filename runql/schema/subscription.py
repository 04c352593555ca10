"""The root Subscription type: live runs over websockets (graphql-transport-ws or graphql-ws) and
over HTTP (Apollo's multipart protocol, graphql-sse: runql/fanout/http_streams.py)."""

from __future__ import annotations

import strawberry

from runql.resolvers import subscriptions
from runql.schema.types import Run, RunEvent


@strawberry.type
class Subscription:
    run_status: Run = strawberry.subscription(
        resolver=subscriptions.run_status,
        description="The run as it is now, then once for every status change, in order, with "
        "`status` as of that change. Completes after a terminal status (at once for a run "
        "that already has one).",
    )
    run_events: RunEvent = strawberry.subscription(
        resolver=subscriptions.run_events,
        description="Every entry of the run's event log after sequence number `after` (all of "
        "them when omitted), then each new one as it is committed: no gap, no duplicate. After "
        "a dropped connection, resubscribe with `after` set to the last `seq` seen. Completes "
        "after the terminal status change.",
    )
    runs: Run = strawberry.subscription(
        resolver=subscriptions.runs,
        description="For dashboards: the organization's runs that match the filter, each time "
        "one changes (new runs included), as it is after the change.",
    )
