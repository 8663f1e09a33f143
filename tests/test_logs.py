"""Tests of the structured logs: one JSON object per line, one line per event."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from stream_server.logs import JsonFormatter, configure_logging, log_event


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger at INFO whose handler writes JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("stream_server.tests.logs")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.handlers = []


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    text = buffer.getvalue()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_log_event_at_info_with_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    log_event(logger, "stream.open", stream="abc123", segments=3, audio_ms=12.5, ok=True, voice=None)
    [entry] = lines(buffer)
    assert entry["event"] == "stream.open"
    assert entry["level"] == "info"
    assert entry["logger"] == "stream_server.tests.logs"
    assert isinstance(entry["ts"], float)
    assert {k: entry[k] for k in ("stream", "segments", "audio_ms", "ok", "voice")} == {
        "stream": "abc123",
        "segments": 3,
        "audio_ms": 12.5,
        "ok": True,
        "voice": None,
    }


def test_one_line_per_event(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    log_event(logger, "a", n=1)
    log_event(logger, "b", text_len=2, note="line one\nline two")
    log_event(logger, "c", level=logging.WARNING, error="boom")
    entries = lines(buffer)
    assert [e["event"] for e in entries] == ["a", "b", "c"]
    assert entries[1]["note"] == "line one\nline two"  # escaped inside its one line
    assert entries[2]["level"] == "warning"


def test_debug_event_not_emitted_at_info(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    log_event(logger, "stream.segment", level=logging.DEBUG, text="private words")
    assert buffer.getvalue() == ""
    logger.setLevel(logging.DEBUG)
    log_event(logger, "stream.segment", level=logging.DEBUG, text="private words")
    [entry] = lines(buffer)
    assert (entry["level"], entry["text"]) == ("debug", "private words")


def test_plain_logging_extra_attributes_become_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    logger.info("uvicorn.style %s", "message", extra={"client": "127.0.0.1"})
    [entry] = lines(buffer)
    assert entry["event"] == "uvicorn.style message"
    assert entry["client"] == "127.0.0.1"
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_exception_is_included(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logger.exception("stream.synthesis_crashed", extra={"fields": {"stream": "s1"}})
    [entry] = lines(buffer)
    assert entry["level"] == "error"
    assert entry["stream"] == "s1"
    assert "RuntimeError: kaput" in entry["exc"]


def test_event_without_fields_has_only_the_standard_keys(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    log_event(logger, "stream.closed")
    [entry] = lines(buffer)
    assert set(entry) == {"ts", "level", "logger", "event"}


def test_unencodable_extra_attribute_still_gives_a_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    logging.raiseExceptions = False  # keep the handler's error report out of the test output
    try:
        logging.LoggerAdapter(logger, {"websocket": object()}).info("connection open")
    finally:
        logging.raiseExceptions = True
    [entry] = lines(buffer)
    assert entry["event"] == "connection open"


def test_configure_logging_routes_our_loggers_through_the_formatter() -> None:
    config = configure_logging("warning")
    assert config["formatters"]["json"]["()"] is JsonFormatter
    for name in ("stream_server", "uvicorn", "uvicorn.access"):
        assert config["loggers"][name]["level"] == "WARNING"
        assert config["loggers"][name]["handlers"] == ["stderr"]
    logging.config.dictConfig(config)  # a valid dictConfig
    try:
        assert not logging.getLogger("stream_server").isEnabledFor(logging.INFO)
        assert logging.getLogger("stream_server").isEnabledFor(logging.WARNING)
    finally:
        for name in ("stream_server", "uvicorn", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True


def test_uvicorn_client_faults_are_not_server_errors() -> None:
    from stream_server.logs import UvicornClientFaults

    faults = UvicornClientFaults()
    denied = logging.makeLogRecord({"name": "uvicorn.error", "msg": "ASGI callable returned without completing handshake.", "levelno": logging.ERROR})
    assert faults.filter(denied) is False
    try:
        b"\xb3".decode()
    except UnicodeDecodeError:
        import sys

        bad_utf8 = logging.makeLogRecord(
            {"name": "uvicorn.error", "msg": "Invalid UTF-8 sequence received from client.", "levelno": logging.ERROR,
             "levelname": "ERROR", "exc_info": sys.exc_info()}
        )  # fmt: skip
    assert faults.filter(bad_utf8) is True
    assert bad_utf8.levelname == "WARNING" and bad_utf8.exc_info is None
    ours = logging.makeLogRecord({"name": "uvicorn.error", "msg": "Exception in ASGI application", "levelno": logging.ERROR})
    assert faults.filter(ours) is True and ours.levelno == logging.ERROR
