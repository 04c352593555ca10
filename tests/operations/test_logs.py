"""Log lines are JSON objects (or text) that carry the request id; the server's own lines
included, uvicorn's access log replaced by runql's."""

import json
import logging
import logging.config
import os
import sys

import pytest

from runql.operations.logs import JsonFormatter, RequestIdFilter, uvicorn_log_config
from runql.operations.requests import RequestRecord, serving
from runql.settings import Settings


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("runql.test").makeRecord(
        "runql.test", logging.WARNING, __file__, 1, message, args, None, extra=extra)
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
    assert entry == {"level": "warning", "logger": "runql.test", "message": "ran Feed",
                     "request_id": "req-json-1", "operation": "Feed", "status": 200}


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


@pytest.mark.parametrize(("log_format", "expected"), [("json", '"request_id":"req-cfg-1"'),
                                                       ("text", "[req-cfg-1] configured")])
def test_the_server_s_log_config_formats_every_line(
    log_format: str, expected: str, capsys: pytest.CaptureFixture[str]
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
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    assert expected in capsys.readouterr().err
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": False,
                                                   "level": "WARNING"}
