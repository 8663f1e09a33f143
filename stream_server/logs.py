"""Structured logs: one JSON object per line, one line per event.

Text content never appears at INFO level or above: events carry lengths, counts and ids; an event
that carries text is logged at DEBUG level only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec

# A log line must never be lost to a value msgspec cannot encode: such values are shown by repr.
_encoder = msgspec.json.Encoder(enc_hook=repr)
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# Secrets that libraries put in their own lines: uvicorn logs request paths with their query (a
# browser token), and at debug level the WebSocket handshake's headers (a key).
_SECRETS = (
    re.compile(r"([?&]token=)[^&\s\\\"]+"),
    re.compile(r"((?:authorization|proxy-authorization|x-goog-api-key|x-api-key|api-key):\s*)[^\\\"\n]+", re.IGNORECASE),
    # An SSE session's id is its event stream's credential: keep enough to follow it in the log.
    re.compile(r"(/v1/tts/sessions/[0-9a-f]{8})[0-9a-f]{24}"),
)


class UvicornClientFaults(logging.Filter):
    """uvicorn logs two client-side events as server errors; they are not ours to alert on.

    - After a WebSocket refused with an HTTP response (a 401 for a bad key), websockets-sansio
      logs "returned without completing handshake" though the refusal went out as it should
      (Kludex/uvicorn#3138). Our app never leaves a handshake any other way: dropped.
    - A text frame that is not UTF-8 is closed with 1007, correctly, but logged at ERROR with a
      traceback: any client could flood the log with them. Kept, as a one-line warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message == "ASGI callable returned without completing handshake.":
            return False
        if message == "Invalid UTF-8 sequence received from client.":
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            entry.update(fields)
        else:  # a library's record: keep its `extra` attributes
            entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = _encoder.encode(entry).decode("utf-8", "replace")
        for secret in _SECRETS:
            line = secret.sub(r"\1***", line)
        return line


def configure_logging(level: str) -> dict[str, Any]:
    """Route our loggers and uvicorn's through the JSON formatter; returns uvicorn's log_config."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"uvicorn_client_faults": {"()": UvicornClientFaults}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["uvicorn_client_faults"]}
        },
        "loggers": {
            "stream_server": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            # Piper's own warnings quote the text ("Missing phoneme from id map: ..."): at DEBUG only.
            "piper": {
                "handlers": ["stderr"],
                "level": "DEBUG" if level == "debug" else "ERROR",
                "propagate": False,
            },
        },
    }


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
