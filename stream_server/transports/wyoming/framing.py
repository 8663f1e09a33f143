"""Wyoming's framing, sans I/O: bytes in, `wyoming.event.Event`s out, and events to bytes.

An event is a JSON header line (`type`, `version`, `data_length`, `payload_length`, maybe `data`),
then `data_length` bytes of JSON data (merged over the header's `data`), then `payload_length`
bytes of payload. Events are the `wyoming` package's own `Event`, and they are written with its
`write_event`, so the bytes on the wire are the package's.

Reading is ours: the package's `async_read_event` needs an asyncio `StreamReader`, reads
`data_length` and `payload_length` bytes of any size into memory, and answers a malformed header
with `None`, the same as the end of the connection, so a server could neither bound a client's
memory nor tell it what was wrong. This decoder bounds every part by `limit` bytes and says what
was wrong: an oversized data or payload is skipped (its length is known, so the next event is
found again); a header that is not JSON, or a line over the limit, cannot be resynchronized and
ends the connection.
"""

from __future__ import annotations

import io
import json

from wyoming.event import Event, write_event

from ...protocol import ErrorCode


class FrameError(Exception):
    """A client's bytes are not a Wyoming event we take. `fatal`: the next event cannot be found."""

    def __init__(self, code: str, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal


def encode_event(event: Event) -> bytes:
    """The event's bytes on the wire, written by the `wyoming` package."""
    out = io.BytesIO()
    write_event(event, out)
    return out.getvalue()


class EventDecoder:
    """Feed it the bytes a connection receives; take out each complete event in order."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._header: dict | None = None
        self._skip = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        self._buffer += data

    def next_event(self) -> Event | None:
        """The next complete event, or None until more bytes come. Raises `FrameError`; after a
        fatal one the decoder takes nothing more."""
        if self._failed:
            return None
        try:
            return self._next()
        except FrameError as exc:
            if exc.fatal:
                self._failed = True
                self._buffer.clear()
            raise

    def _next(self) -> Event | None:
        if self._header is None:
            end = self._buffer.find(b"\n", 0, self._limit + 1)
            if end < 0:
                if len(self._buffer) > self._limit:
                    raise _too_large(f"an event header line over {self._limit} bytes", fatal=True)
                return None
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._header = _parse_header(line)
        header = self._header
        data_length, payload_length = header["data_length"], header["payload_length"]
        if self._skip_oversized(data_length + payload_length, "data and payload"):
            return None
        if len(self._buffer) < data_length + payload_length:
            return None
        self._header = None
        data = header["data"]
        if data_length:
            try:
                extra = json.loads(self._buffer[:data_length])
            except (ValueError, UnicodeDecodeError):
                del self._buffer[: data_length + payload_length]
                raise FrameError(ErrorCode.BAD_MESSAGE, "the event's data is not JSON", fatal=False) from None
            if not isinstance(extra, dict):
                del self._buffer[: data_length + payload_length]
                raise FrameError(ErrorCode.BAD_MESSAGE, "the event's data is not a JSON object", fatal=False)
            data = {**data, **extra}
        payload = bytes(self._buffer[data_length : data_length + payload_length]) if payload_length else None
        del self._buffer[: data_length + payload_length]
        return Event(type=header["type"], data=data, payload=payload)

    def _skip_oversized(self, length: int, what: str) -> bool:
        """An event whose data and payload exceed the limit: drop its bytes as they come, and say so."""
        if length <= self._limit:
            return False
        assert self._header is not None
        event_type = self._header["type"]
        self._header = None
        dropped = min(length, len(self._buffer))
        del self._buffer[:dropped]
        self._skip = length - dropped
        raise _too_large(f"{event_type!r} event with {length} bytes of {what} (limit {self._limit})", fatal=False)


def _parse_header(line: bytes) -> dict:
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise FrameError(ErrorCode.BAD_MESSAGE, "an event header is not a JSON line", fatal=True) from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or not header["type"]:
        raise FrameError(ErrorCode.BAD_MESSAGE, "an event header must be a JSON object with a `type`", fatal=True)
    lengths = {}
    for field in ("data_length", "payload_length"):
        value = header.get(field) or 0
        if type(value) is not int or value < 0:
            # Where the next event starts is unknown.
            raise FrameError(ErrorCode.BAD_MESSAGE, f"`{field}` must be a non-negative integer", fatal=True)
        lengths[field] = value
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise FrameError(ErrorCode.BAD_MESSAGE, "`data` must be a JSON object", fatal=True)
    return {"type": header["type"], "data": data, **lengths}


def _too_large(what: str, *, fatal: bool) -> FrameError:
    return FrameError(ErrorCode.MESSAGE_TOO_LARGE, f"{what}", fatal=fatal)
