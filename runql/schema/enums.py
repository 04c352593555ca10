"""The run model's enumerations as GraphQL enums, every value documented.

Clients should tolerate values added later, as with any evolving API.
"""

from enum import Enum
from typing import TypeVar

import strawberry

from runql import enums

E = TypeVar("E", bound=type[Enum])


def _documented(cls: E, description: str, values: dict[str, str]) -> E:
    graphql_enum = strawberry.enum(cls, description=description)
    for value in graphql_enum.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[value.name]
    return graphql_enum


RunStatus = _documented(
    enums.RunStatus,
    "Where a run is in its life: PENDING -> RUNNING -> SUCCESS | ERROR, and PENDING or "
    "RUNNING -> CANCELLED. SUCCESS, ERROR and CANCELLED are terminal and never change.",
    {
        "PENDING": "Accepted and waiting for a worker.",
        "RUNNING": "A worker is executing the agent.",
        "SUCCESS": "The agent finished and wrote its reply.",
        "ERROR": "The run failed; its errors say why.",
        "CANCELLED": "Cancelled before it finished.",
    },
)

MessageGroupStatus = _documented(
    enums.MessageGroupStatus,
    "The state of a message group (one turn of the conversation).",
    {
        "PENDING": "Created, nothing written yet.",
        "IN_PROGRESS": "Messages are still being added (a streaming agent's reply while "
        "its run is RUNNING).",
        "COMPLETED": "Every message of the turn is written.",
        "FAILED": "The turn ended in an error.",
        "CANCELLED": "The turn was cancelled with its run; what was streamed is kept.",
    },
)

MessageGroupType = _documented(
    enums.MessageGroupType,
    "Whether a message group is the user's input or the agent's output.",
    {
        "USER_MESSAGE": "Input from a user; it triggers a run.",
        "ASSISTANT_MESSAGE": "Output of an agent, written by a run.",
        "SYSTEM_MESSAGE": "A message from the system, such as a notice.",
    },
)

MessageStatus = _documented(
    enums.MessageStatus,
    "The state of one message.",
    {
        "PENDING": "Being written.",
        "ACTIVE": "Written and visible; while its run streams it, its text so far.",
        "FAILED": "Could not be written; see its error.",
        "DELETED": "Removed from the conversation.",
    },
)

MessageType = _documented(
    enums.MessageType,
    "What a message carries.",
    {
        "CONTENT": "Text and attachments for people to read.",
        "TOOL_CALL": "An agent's call of a tool: one JSON content part, "
        '{"name", "arguments", "call_id"}.',
        "TOOL_RESULT": "What a tool returned: one JSON content part, "
        '{"name", "result", "call_id"}.',
        "ERROR": "A failure reported in the conversation.",
    },
)

ActorType = _documented(
    enums.ActorType,
    "Who wrote a message or attached an item.",
    {"USER": "A person.", "AGENT": "An agent.", "SYSTEM": "runql itself."},
)

ContentPartType = _documented(
    enums.ContentPartType,
    "How the text of a content part is to be read.",
    {
        "TEXT": "Plain text.",
        "MARKDOWN": "CommonMark.",
        "CODE": "Source code.",
        "JSON": "A JSON document, as text.",
    },
)

AttachmentType = _documented(
    enums.AttachmentType,
    "What an attachment points at.",
    {
        "FILE": "Any file.",
        "IMAGE": "An image.",
        "AUDIO": "A sound recording.",
        "VIDEO": "A video.",
        "LINK": "A web page.",
    },
)

RunEventType = _documented(
    enums.RunEventType,
    "What a run event records.",
    {
        "STATUS_CHANGED": "The run's status changed; the payload names the new one.",
        "MESSAGE_ADDED": "The run wrote a message: {message_group_id, message_id}. A "
        "streamed message is added empty (ACTIVE, its group IN_PROGRESS) and grows by "
        "MESSAGE_DELTA events.",
        "MESSAGE_DELTA": "A streaming agent's message grew: {message_group_id, message_id, "
        "offset, text}, and `attachment_id` when an attachment was added. `text` goes at "
        "`offset` (in characters, Unicode code points) of the message's text; the message's "
        "stored text is the concatenation of its deltas, so a client that resumes with "
        "`after` gets exactly what it missed. Deltas are coalesced: a run writes at most once "
        "every 50 ms, one MESSAGE_DELTA per message with the text since its last one.",
        "ERROR_ADDED": "The run recorded an error.",
        "ITEM_ATTACHED": "An item was attached to the run.",
    },
)
