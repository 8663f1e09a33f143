"""Structured logs: one JSON object per line, one line per event.

Text content never appears at INFO level or above: events carry lengths, counts and ids; an event
that carries text is logged at DEBUG level only.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

import msgspec

from .security.keys import looks_like_key
from .security.tokens import looks_like_token

# A log line must never be lost to a value msgspec cannot encode: such values are shown by repr.
_encoder = msgspec.json.Encoder(enc_hook=repr)
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# Secrets that libraries put in their own lines: uvicorn logs request paths with their query (a
# browser token, or a key a client put there), and at debug level the WebSocket handshake's headers.
# A query is masked parameter by parameter, by what its value looks like (see `_masked_query`).
# In the encoded line it ends at a space, a `#`, the string's closing quote or an encoded quote
# (`\"`; other JSON escapes, such as `\u00e9`, are part of it).
_QUERY = re.compile(r"\?((?:[^\s\\#\"]|\\[^\"])+)")
_QUERY_SEPARATOR = re.compile(r"([&;])")
# Names that say "credential" whatever the value: a short or malformed token is masked too.
_CREDENTIAL_NAMES = frozenset(
    {
        "token", "access_token", "key", "api_key", "apikey", "api-key", "auth", "authorization",
        "password", "secret", "xi-api-key", "xi_api_key", "x-api-key",
    }
)
_SECRETS = (
    re.compile(r"((?:authorization|proxy-authorization|x-goog-api-key|x-api-key|xi-api-key|api-key):\s*)[^\\\"\n]+", re.IGNORECASE),
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


# Fields on every line of this process: with --workers, which process wrote it (they share stderr).
_process_fields: dict[str, Any] = {}


def tag_log_lines(**fields: Any) -> None:
    _process_fields.update(fields)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_process_fields,
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            entry.update(fields)
        else:  # a library's record: keep its `extra` attributes
            entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = _encoder.encode(entry).decode("utf-8", "replace")
        line = _QUERY.sub(_masked_query, line)
        for secret in _SECRETS:
            line = secret.sub(r"\1***", line)
        return line


def _masked_query(match: re.Match[str]) -> str:
    """A query string with the value of every parameter that is, or looks like, a credential
    replaced by `***`: `?TOKEN=`, `?%74oken=`, `;token=` and `?api_key=` alike. Names and values
    are judged percent-decoded, as the server would read them; any value with the shape of a key
    or a token is masked under any name (a key is never a legitimate query value)."""
    parts = _QUERY_SEPARATOR.split(match.group(1))
    for i in range(0, len(parts), 2):  # odd indices hold the separators
        name, equals, value = parts[i].partition("=")
        if not equals:
            name, value = "", name  # a bare value (`?KEY`)
        if value and _is_credential(unquote_plus(name).strip().lower(), unquote_plus(value)):
            parts[i] = f"{name}{equals}***"
    return "?" + "".join(parts)


def _is_credential(name: str, value: str) -> bool:
    return name in _CREDENTIAL_NAMES or looks_like_key(value) or looks_like_token(value)


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
