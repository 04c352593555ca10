"""Logs as one JSON object a line (RUNQL_LOG_FORMAT=json, the default) or as text, each with the
id of the request it belongs to. `runql serve` hands `uvicorn_log_config` to uvicorn; uvicorn's
access log is replaced by runql's (`access_line`, written by the edge), which knows the request
id and the operation. An access line costs little: nothing is made when its level is off, no
caller is looked up, and the JSON formatter takes its fields as given."""

import logging
import os
import threading
import time
import traceback
from typing import Any

import orjson

from runql.operations.requests import current_request_id
from runql.settings import Settings

ACCESS = "runql.access"
_FIELDS = "_runql_fields"  # on an access line's record: its fields, in order
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d [%(request_id)s] %(message)s"
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    "color_message",
}  # uvicorn's copy of the message with terminal colours


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    given: dict[str, Any] | None = getattr(record, _FIELDS, None)
    if given is not None:
        return given
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


_access = logging.getLogger(ACCESS)


def access_line(level: int, message: str, request_id: str, fields: dict[str, Any]) -> None:
    """One line of the access log, its fields as attributes of the record (as `extra` gives
    them) and as the JSON line's own fields. Where the line would reach one handler only, runql's
    own with its JSON formatter (as `uvicorn_log_config` sets them up), the line is written to it
    directly, the same text without a LogRecord (which cost more than the rest of the line)."""
    if not _access.isEnabledFor(level):
        return
    handler = _json_handler(level)
    line = None
    if handler is not None:
        try:
            line = _json_line(level, message, request_id, fields)
        except Exception:  # logging's own path reports what fails
            line = None
    if handler is not None and line is not None:
        with handler.lock:  # type: ignore[union-attr]  # Handler.createLock made it
            handler.emit_line(line, level)
        return
    record = _access.makeRecord(ACCESS, level, "", 0, message, (), None, extra=fields)
    record.request_id = request_id
    setattr(record, _FIELDS, fields)
    _access.handle(record)


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: a line waits at most FLUSH_SECONDS
    (or until BATCH_BYTES wait) instead of costing a write and a flush of its own, as a served
    request's access line did. A WARNING or worse is written at once, with every line before
    it; `flush` (logging.shutdown at a clean exit, `close`) writes whatever waits. A process
    killed outright loses at most FLUSH_SECONDS of INFO lines."""

    FLUSH_SECONDS = 0.05
    BATCH_BYTES = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._waiting = threading.Event()  # set while lines wait for the flusher
        self._pending = False  # whether it is set (read per line without Event's method)
        self._flusher_pid = 0  # the process whose flusher thread runs (none after a fork)
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """A forked child's copy of the waiting lines: its parent writes them."""
        self._lines, self._size = [], 0
        self._pending = False
        self._waiting.clear()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.emit_line(line, record.levelno)

    def emit_line(self, line: str, levelno: int) -> None:
        """A formatted line, at `levelno` (called with the handler's lock held)."""
        self._lines.append(line)
        self._size += len(line)
        if levelno >= logging.WARNING or self._size >= self.BATCH_BYTES:
            self.flush()
        elif not self._pending:
            self._start_flusher()
            self._pending = True
            self._waiting.set()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock made it
            self._pending = False
            self._waiting.clear()
            if not self._lines:
                return
            lines, self._lines, self._size = self._lines, [], 0
            try:
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))

    def close(self) -> None:
        self.flush()
        super().close()

    def _start_flusher(self) -> None:
        if self._flusher_pid != os.getpid():
            self._flusher_pid = os.getpid()
            threading.Thread(
                target=self._flush_forever, name="runql-log-flush", daemon=True
            ).start()

    def _flush_forever(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(self.FLUSH_SECONDS)
            self.flush()


_second: tuple[int, str] = (-1, "")  # the last second utc_time wrote, and its text


def utc_time(created: float) -> str:
    """`created` as `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`
    writes it, with a Z: rounded to the microsecond half to even, as datetime rounds, then cut
    to the millisecond. Its date and time of day are formatted once a second (a datetime a
    line cost as much as the rest of the line)."""
    second = int(created)
    micro = round((created - second) * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    global _second
    known = _second  # one read: another thread may replace it meanwhile
    if known[0] != second:
        known = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{known[1]}.{micro // 1000:03d}Z"


def _entry(
    created: float, level_name: str, logger: str, message: str, pid: int | None, request_id: str
) -> dict[str, Any]:
    """A JSON line's leading fields, in order."""
    entry: dict[str, Any] = {
        "time": utc_time(created),
        "level": level_name.lower(),
        "logger": logger,
        "message": message,
        "pid": pid,  # which of `runql serve --workers N`'s processes
    }
    if request_id != "-":
        entry["request_id"] = request_id
    return entry


_pid = os.getpid()  # a system call each time: read once, and again in a forked child


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _json_line(level: int, message: str, request_id: str, fields: dict[str, Any]) -> str:
    """The line JsonFormatter writes for an access line's record made now."""
    entry = _entry(time.time(), logging.getLevelName(level), ACCESS, message, _pid, request_id)
    entry.update(fields)
    return orjson.dumps(entry, default=str).decode()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            record.process,
            getattr(record, "request_id", "-"),
        )
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


def _json_handler(level: int) -> "BufferedStreamHandler | None":
    """The one handler an access line at `level` reaches, if it is runql's own buffered handler
    with the JSON formatter and no filter but the request id's (whose id the line carries);
    None for any other set-up (text, more handlers, filters): the line goes through logging."""
    if _access.disabled or _access.filters:
        return None
    handler: logging.Handler | None = None
    logger: logging.Logger | None = _access
    while logger is not None:
        for found in logger.handlers:
            if handler is not None:  # a second one
                return None
            handler = found
        logger = logger.parent if logger.propagate else None
    if (
        type(handler) is not BufferedStreamHandler
        or type(handler.formatter) is not JsonFormatter
        or level < handler.level
    ):
        return None
    for filter_ in handler.filters:
        if type(filter_) is not RequestIdFilter:
            return None
    return handler


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A logging.config.dictConfig for the server: everything through one handler on stderr."""
    formatter: dict[str, Any] = (
        {"()": "runql.operations.logs.JsonFormatter"}
        if settings.log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "runql.operations.logs.RequestIdFilter"}},
        "formatters": {"runql": formatter},
        "handlers": {
            "stderr": {
                "class": "runql.operations.logs.BufferedStreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "runql",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            "alembic": {"level": "WARNING"},  # readiness reads the revision: no chatter
        },
    }
