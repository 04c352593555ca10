"""The root Mutation type and its payloads, which name the object they changed."""

from __future__ import annotations

import strawberry

from runql.resolvers import mutations
from runql.schema.types import Agent, Run


@strawberry.type(description="The run createRun made, or found for a repeated idempotency key.")
class CreateRunPayload:
    run: Run


@strawberry.type(description="The run after cancelRun.")
class CancelRunPayload:
    run: Run


@strawberry.type
class CreateAgentPayload:
    agent: Agent


@strawberry.type
class UpdateAgentPayload:
    agent: Agent


@strawberry.type
class ArchiveAgentPayload:
    agent: Agent


@strawberry.type
class Mutation:
    create_run: CreateRunPayload = strawberry.field(
        resolver=mutations.create_run_,
        description="Post a message to an agent: creates the run (PENDING), its trigger "
        "message group and, unless threadId is given, a new thread. Nothing is written when "
        "the input is refused.",
    )
    cancel_run: CancelRunPayload = strawberry.field(
        resolver=mutations.cancel_run_,
        description="Cancel a run. A PENDING run is cancelled at once; a RUNNING one is stopped "
        "by its worker (the answer waits up to 5 s for that; `cancelRequestedAt` shows the "
        "request). Cancelling a cancelled run changes nothing; a SUCCESS or ERROR run is a "
        "CONFLICT.",
    )
    create_agent: CreateAgentPayload = strawberry.field(
        resolver=mutations.create_agent_,
        description="Make an agent. An unknown kind is refused with the list of known ones.",
    )
    update_agent: UpdateAgentPayload = strawberry.field(resolver=mutations.update_agent_)
    archive_agent: ArchiveAgentPayload = strawberry.field(
        resolver=mutations.archive_agent_,
        description="Archive an agent: it keeps its runs and takes no new ones.",
    )
