"""The root Query type."""

from __future__ import annotations

import strawberry

from runql.resolvers import queries
from runql.schema.arguments import list_resolver, root_agents, root_runs, root_threads
from runql.schema.node import Connection, Node
from runql.schema.types import Actor, Agent, MessageGroup, Run, Thread


@strawberry.type
class Query:
    run: Run | None = strawberry.field(
        resolver=queries.run, description="A run by its id; null when there is none."
    )
    runs: Connection[Run] = strawberry.field(
        resolver=list_resolver(root_runs, queries.listed("Run"), root=False),
        description="Runs, filtered like the REST list, newest first by default.",
    )
    agent: Agent | None = strawberry.field(resolver=queries.agent)
    agents: Connection[Agent] = strawberry.field(
        resolver=list_resolver(root_agents, queries.listed("Agent"), root=False)
    )
    thread: Thread | None = strawberry.field(resolver=queries.thread)
    threads: Connection[Thread] = strawberry.field(
        resolver=list_resolver(root_threads, queries.listed("Thread"), root=False)
    )
    message_group: MessageGroup | None = strawberry.field(resolver=queries.message_group)
    actor: Actor | None = strawberry.field(resolver=queries.actor)
    node: Node | None = strawberry.field(
        resolver=queries.node, description="Any object by its id, whatever its kind."
    )
    nodes: list[Node | None] = strawberry.field(
        resolver=queries.nodes,
        description="Objects by their ids, in the same order; null where there is none.",
    )
