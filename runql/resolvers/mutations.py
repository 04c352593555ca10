"""Mutation resolvers: each turns GraphQL input into a lifecycle or catalog call."""

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Any

from strawberry import ID
from strawberry.utils.str_converters import to_camel_case

from runql.agents import catalog
from runql.agents.protocol import Attachment, Part
from runql.enums import RunEventType, RunStatus
from runql.lifecycle.runs import RunRequest, cancel_run, create_run
from runql.lifecycle.validation import Content
from runql.resolvers.context import Info
from runql.schema.inputs import (
    CreateAgentInput,
    CreateRunInput,
    RunContentInput,
    UpdateAgentInput,
)
from runql.storage.database import Database
from runql.storage.events import RunEvent
from runql.storage.tables import AgentRow, RunRow

CANCEL_WAIT_SECONDS = 5.0

# A refusal's field by GraphQL's name (agent_id -> agentId). The checks name every field they
# look at, fit or not: the names are the code's own, few but for the parts' indexes.
graphql_names = functools.lru_cache(maxsize=512)(to_camel_case)


@dataclass(frozen=True, slots=True)
class RunPayload:
    run: RunRow


@dataclass(frozen=True, slots=True)
class AgentPayload:
    agent: AgentRow


def _content(content: RunContentInput) -> Content:
    if content.text is not None:
        return Content.text(content.text.value)
    assert content.structured is not None
    structured = content.structured.value
    return Content(
        tuple(Part(part.text, part.type) for part in structured.parts),
        tuple(Attachment(a.type, a.file_id, a.url, a.caption) for a in structured.attachments),
    )


def run_request_of(input: dict[str, Any]) -> RunRequest:
    """The request of a CreateRunInput as graphql-core coerces it (a dict by GraphQL names),
    for the mutation lane: the same request create_run_ makes of strawberry's input object."""
    return RunRequest(
        agent_id=input["agentId"],
        content=_content_of(input["content"]),
        thread_id=input.get("threadId"),
        language=input.get("language"),
        country=input.get("country"),
        timezone=input.get("timezone"),
        metadata=input.get("metadata"),  # type: ignore[arg-type]
        raw_inputs=input.get("rawInputs"),
        idempotency_key=input.get("idempotencyKey"),
    )


def _content_of(content: dict[str, Any]) -> Content:
    if "text" in content:
        return Content.text(content["text"])
    structured = content["structured"]
    return Content(
        tuple(Part(part["text"], part["type"]) for part in structured.get("parts", ())),
        tuple(
            Attachment(a["type"], a.get("fileId"), a.get("url"), a.get("caption"))
            for a in structured.get("attachments", ())
        ),
    )


async def create_run_(info: Info, input: CreateRunInput) -> RunPayload:
    request = RunRequest(
        agent_id=input.agent_id,
        content=_content(input.content),
        thread_id=input.thread_id,
        language=input.language,
        country=input.country,
        timezone=input.timezone,
        metadata=input.metadata,  # type: ignore[arg-type]
        raw_inputs=input.raw_inputs,
        idempotency_key=input.idempotency_key,
    )
    context = info.context
    run = await create_run(
        context.database,
        context.org_id,
        request,
        max_content_bytes=context.settings.max_content_bytes,
        json_caps=context.settings.json_caps,
        names=graphql_names,
    )
    return RunPayload(run)


async def cancel_run_(info: Info, id: ID) -> RunPayload:
    """Cancel; for a RUNNING run, wait a little for this process's workers to stop it."""
    database, org_id = info.context.database, info.context.org_id
    if info.context.settings.workers == 0:
        return RunPayload(await cancel_run(database, org_id, id))
    async with _terminal_status(database, id) as settled:
        run = await cancel_run(database, org_id, id)
        if run.status == RunStatus.RUNNING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), CANCEL_WAIT_SECONDS)
            run = await info.context.loaders.run.load(id) or run
    return RunPayload(run)


@contextlib.asynccontextmanager
async def _terminal_status(database: Database, run_id: str) -> Any:
    settled = asyncio.Event()

    def notice(event: RunEvent) -> None:
        if (
            event.run_id == run_id
            and event.type is RunEventType.STATUS_CHANGED
            and RunStatus(event.payload["status"]).is_terminal
        ):
            settled.set()

    database.on_commit(notice)
    try:
        yield settled
    finally:
        database.remove_commit_listener(notice)


async def create_agent_(info: Info, input: CreateAgentInput) -> AgentPayload:
    context = info.context
    agent = await catalog.create_agent(
        context.database,
        context.agents,
        context.org_id,
        name=input.name,
        kind=input.kind,
        config=input.config,
    )
    return AgentPayload(agent)


async def update_agent_(info: Info, input: UpdateAgentInput) -> AgentPayload:
    agent = await catalog.update_agent(
        info.context.database,
        info.context.agents,
        info.context.org_id,
        input.id,
        name=input.name.value if input.name is not None else None,
        config=input.config.value if input.config is not None else None,
        config_given=input.config is not None,
    )
    return AgentPayload(agent)


async def archive_agent_(info: Info, id: ID) -> AgentPayload:
    context = info.context
    return AgentPayload(await catalog.archive_agent(context.database, context.org_id, id))
