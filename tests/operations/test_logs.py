"""Log lines are JSON objects (or text) that carry the request id; the server's own lines
included, uvicorn's access log replaced by runql's."""

import io
import json
import logging
import logging.config
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from runql.operations.logs import (
    ACCESS,
    BufferedStreamHandler,
    JsonFormatter,
    RequestIdFilter,
    access_line,
    utc_time,
    uvicorn_log_config,
)
from runql.operations.requests import RequestRecord, serving
from runql.settings import Settings


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("runql.test").makeRecord(
        "runql.test", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )
    RequestIdFilter().filter(record)
    return record


def test_a_line_is_one_json_object_with_the_request_id_and_extras() -> None:
    with serving(RequestRecord("req-json-1")):
        record = _record("ran %s", "Feed", operation="Feed", status=200)

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry.pop("time").endswith("Z")
    assert entry.pop("pid") == os.getpid()
    assert entry == {
        "level": "warning",
        "logger": "runql.test",
        "message": "ran Feed",
        "request_id": "req-json-1",
        "operation": "Feed",
        "status": 200,
    }


def test_outside_a_request_there_is_no_request_id() -> None:
    assert "request_id" not in json.loads(JsonFormatter().format(_record("idle")))


def test_an_exception_is_logged_whole_on_the_server() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()

    entry = json.loads(JsonFormatter().format(record))

    assert entry["exception"].startswith("Traceback")
    assert entry["exception"].endswith("ValueError: boom")


@pytest.mark.parametrize(
    ("log_format", "expected"),
    [("json", '"request_id":"req-cfg-1"'), ("text", "[req-cfg-1] configured")],
)
def test_the_server_s_log_config_formats_every_line(
    log_format: Literal["json", "text"], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = uvicorn_log_config(Settings(log_format=log_format))
    config["root"]["level"] = "INFO"
    logger = logging.getLogger("runql.configured")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.config.dictConfig({**config, "loggers": {}})  # the root's part only
    try:
        with serving(RequestRecord("req-cfg-1")):
            logger.info("configured")
        for handler in root.handlers:
            handler.flush()  # lines are written in batches (BufferedStreamHandler)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    assert expected in capsys.readouterr().err
    assert config["loggers"]["uvicorn.access"] == {
        "handlers": [],
        "propagate": False,
        "level": "WARNING",
    }


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_records() -> Iterator[_Kept]:
    """What the access logger hands its handlers, at INFO."""
    logger, kept = logging.getLogger(ACCESS), _Kept()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield kept
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)
        logger.propagate = propagate


def test_an_access_line_carries_its_fields_as_the_record_s_and_the_line_s(
    access_records: _Kept,
) -> None:
    access_line(
        logging.INFO,
        "POST /graphql 200",
        "req-access-1",
        {"method": "POST", "path": "/graphql", "status": 200, "operation": None},
    )

    [record] = access_records.records
    fields = vars(record)
    assert (record.getMessage(), fields["method"], fields["status"]) == (
        "POST /graphql 200",
        "POST",
        200,
    )
    RequestIdFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert list(entry)[5:] == ["request_id", "method", "path", "status", "operation"]
    assert entry["request_id"] == "req-access-1"
    assert entry["message"] == "POST /graphql 200"
    assert entry["operation"] is None


def test_an_access_line_below_the_logger_s_level_makes_no_record(access_records: _Kept) -> None:
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    try:
        access_line(logging.DEBUG, "GET /healthz 200", "req-quiet-1", {"status": 200})
        access_line(logging.INFO, "GET /runs 200", "req-loud-1", {"status": 200})
    finally:
        logging.setLogRecordFactory(factory)

    assert made == [ACCESS]
    assert [r.getMessage() for r in access_records.records] == ["GET /runs 200"]


def _buffered() -> tuple[BufferedStreamHandler, io.StringIO, logging.Logger]:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"runql.test.buffered.{id(handler)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler, stream, logger


def test_a_buffered_handler_writes_info_lines_in_a_batch_and_every_one_at_flush() -> None:
    handler, stream, logger = _buffered()
    for number in range(3):
        logger.info("line %d", number)

    assert stream.getvalue() == ""  # waiting for the flusher
    handler.flush()
    assert stream.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\n"


def test_a_buffered_handler_writes_a_warning_at_once_after_the_lines_before_it() -> None:
    _handler, stream, logger = _buffered()
    logger.info("before")
    logger.warning("bad")

    assert stream.getvalue() == "INFO before\nWARNING bad\n"


def test_a_buffered_handler_s_lines_are_written_within_its_flush_interval() -> None:
    _handler, stream, logger = _buffered()
    logger.info("soon")
    deadline = time.monotonic() + 10 * BufferedStreamHandler.FLUSH_SECONDS

    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert stream.getvalue() == "INFO soon\n"


def test_a_buffered_handler_writes_whatever_waits_when_closed() -> None:
    handler, stream, logger = _buffered()
    logger.info("last")
    logger.removeHandler(handler)

    handler.close()

    assert stream.getvalue() == "INFO last\n"


def test_a_line_s_time_is_datetime_s_to_the_millisecond() -> None:
    edges = [0.0, 0.123456, 0.9994999, 0.9995, 0.99999949, 0.9999996, 0.0009995, 0.0000004]
    second = 1_764_682_112
    for created in [second + fraction for fraction in edges] + [
        second + n / 7919 for n in range(7919)
    ]:
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert utc_time(created) == expected.replace("+00:00", "Z"), created


class _PassAll(logging.Filter):
    """A filter of the handler's that passes everything (but is not the request id's)."""


def test_an_access_line_to_the_server_s_json_handler_is_the_line_logging_writes() -> None:
    """With the server's set-up (one BufferedStreamHandler, JSON) the access line is written
    without a LogRecord; it is the very line logging's own path writes (but the time)."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root, access = logging.getLogger(), logging.getLogger(ACCESS)
    handlers, level, access_level = root.handlers[:], root.level, access.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    access.setLevel(logging.NOTSET)
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(args[0])
        return factory(*args, **kwargs)

    fields = {
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "duration_ms": 1.5,
        "sql_statements": 1,
        "operation": None,
        "client": "127.0.0.1",
    }
    logging.setLogRecordFactory(counting)
    try:
        access_line(logging.INFO, "POST /graphql 200", "req-direct-1", fields)
        direct = len(made)
        handler.addFilter(_PassAll())  # another filter: logging's own path
        access_line(logging.INFO, "POST /graphql 200", "req-direct-1", fields)
        handler.flush()
    finally:
        logging.setLogRecordFactory(factory)
        root.handlers[:] = handlers
        root.setLevel(level)
        access.setLevel(access_level)

    assert (direct, made) == (0, [ACCESS])
    written, logged = (json.loads(line) for line in stream.getvalue().splitlines())
    assert written.pop("time")
    assert logged.pop("time")
    assert list(written.items()) == list(logged.items())
    assert written["pid"] == os.getpid()
    assert written["logger"] == ACCESS
