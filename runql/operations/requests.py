"""The request being served: its id (the client's X-Request-ID when it is a sane one, else a new
one), the GraphQL operation it ran and the SQL statements it took. The edge sets it for
the request's task; tasks started from there (DataLoader batches) see the same record."""

import os
import random
import re
from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
_ids = random.Random()  # seeded from the OS; ids need to be unique, not secret
os.register_at_fork(after_in_child=_ids.seed)  # a forked process draws its own ids


def new_request_id() -> str:
    """32 hex digits (uuid4's length), without a system call per request."""
    return f"{_ids.getrandbits(128):032x}"


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    operation: str | None = None
    statements: int = 0


_current: ContextVar[RequestRecord | None] = ContextVar("runql_request", default=None)
CURRENT_REQUEST = _current  # read and set directly where every request passes (no call)


def current_request() -> RequestRecord | None:
    return _current.get()


def current_request_id() -> str | None:
    record = _current.get()
    return record.request_id if record is not None else None


def request_id_from(header: str | None) -> str:
    """The client's id if it is short and plain (it goes into logs and headers), else a new one."""
    if header is not None and _SANE.fullmatch(header):
        return header
    return new_request_id()


class _Serving:
    """The record current inside the block (a class, not a generator: entered per request)."""

    __slots__ = ("record", "token")

    def __init__(self, record: RequestRecord) -> None:
        self.record = record

    def __enter__(self) -> RequestRecord:
        self.token = _current.set(self.record)
        return self.record

    def __exit__(self, *_: object) -> None:
        _current.reset(self.token)


def serving(record: RequestRecord) -> _Serving:
    return _Serving(record)
