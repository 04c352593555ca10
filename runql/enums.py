"""The run model's enumerations.

The spec shows one example value of each ("success", "completed", "assistant_message",
"active", "content", "user", "text", "file"); the full sets are runql's own. Values are
the spec's lower-case strings, stored as they are and sent as they are over REST.
"""

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED})


class MessageGroupStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MessageGroupType(StrEnum):
    USER_MESSAGE = "user_message"
    ASSISTANT_MESSAGE = "assistant_message"
    SYSTEM_MESSAGE = "system_message"


class MessageStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"
    DELETED = "deleted"


class MessageType(StrEnum):
    CONTENT = "content"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    ERROR = "error"


class ActorType(StrEnum):
    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


class ContentPartType(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    CODE = "code"
    JSON = "json"


class AttachmentType(StrEnum):
    FILE = "file"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    LINK = "link"


class RunEventType(StrEnum):
    STATUS_CHANGED = "status_changed"
    MESSAGE_ADDED = "message_added"
    MESSAGE_DELTA = "message_delta"
    ERROR_ADDED = "error_added"
    ITEM_ATTACHED = "item_attached"
