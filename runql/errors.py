"""Errors a client caused or must know about. Every entry point reports them with their code."""

from typing import ClassVar


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
