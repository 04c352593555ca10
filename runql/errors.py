"""Errors a client caused or must know about. Every entry point reports them with their code."""

from collections.abc import Callable
from typing import ClassVar

FieldNames = Callable[[str], str]
"""How the caller's API names a field that a shared check (the lifecycle, the list filters)
calls by its own snake_case name, such as `agent_id` or `content.attachments[0].file_id`:
GraphQL `agentId` and `content.attachments[0].fileId`, REST as it is. A refusal names its field
with it, in its message and in `field`, so that each API's errors speak its own names."""


def own_names(field: str) -> str:
    """The shared checks' own names: snake_case, as REST's body and query have them."""
    return field


class RunqlError(Exception):
    """An error with a stable code; `field` names the input at fault, where there is one."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadUserInput(RunqlError):
    code = "BAD_USER_INPUT"
    http_status = 400


class NotFound(RunqlError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(RunqlError):
    code = "CONFLICT"
    http_status = 409
