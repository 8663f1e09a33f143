"""One Deepgram `/v1/speak` WebSocket's rules, sans I/O: client messages in, stream commands and
Deepgram messages out.

- `Speak` {text} → the stream's text (cut into sentences as it comes: audio starts at the first
  sentence end, before any `Flush`);
- `Flush` → the stream's flush; `Flushed` {sequence_id} once the audio of all the text before
  it has been sent (the `sequence_id`s count the connection's `Flush`es from 0);
- `Clear` → the stream's cancel (barge-in); `Cleared` {sequence_id} after the last frame of the
  cleared audio (counting the `Clear`s from 0); the `Flushed` of a cleared `Flush` never comes;
- `Close` → the stream's end: the rest of the audio, then close 1000.

The server sends `Metadata` first, then raw audio in binary frames. A message this protocol
cannot take (unknown `type`, unknown field, wrong type) is answered with a `Warning` {code,
description} and changes nothing; a frame that is not JSON closes with 1008 `DATA-0000`, a
binary frame with 1003 `MESSAGE-0000`, an oversized one with 1009 `BIG-0000`: Deepgram's close
frames (`CODE: why`). Warnings also carry `warn_code`/`warn_msg`, the names older SDKs, Pipecat
and LiveKit read.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass

import msgspec

from ....media import EncodedFrame
from ....protocol import Cancelled, Done, Error, ErrorCode, ProtocolError, Ready, SegmentEnd, Warning
from ....session import Output, Relay, Stopped

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
MODEL_VERSION = "stream_server"

# How a stream the server ends is closed: Deepgram's code and reason for it.
_STOP_CLOSES = {
    ErrorCode.MESSAGE_TOO_LARGE: (CLOSE_TOO_BIG, "BIG-0000"),
    ErrorCode.IDLE_TIMEOUT: (CLOSE_SERVER_ERROR, "NET-0001"),
    ErrorCode.STREAM_TOO_LONG: (CLOSE_SERVER_ERROR, "NET-0002"),
    ErrorCode.SHUTTING_DOWN: (CLOSE_GOING_AWAY, "NET-0003"),
    ErrorCode.SERVER_BUSY: (CLOSE_TRY_AGAIN, "NET-0000"),
    ErrorCode.TOO_MANY_STREAMS: (CLOSE_TRY_AGAIN, "NET-0000"),
    ErrorCode.RATE_LIMITED: (CLOSE_TRY_AGAIN, "NET-0000"),
    ErrorCode.BAD_MESSAGE: (CLOSE_POLICY, "DATA-0000"),
}


class UnsupportedData(ProtocolError):
    """A binary frame: this protocol takes JSON text only (closed with 1003 `MESSAGE-0000`)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text messages")


class _ClientMessage(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class Speak(_ClientMessage, tag="Speak"):
    text: str


class Flush(_ClientMessage, tag="Flush"):
    pass


class Clear(_ClientMessage, tag="Clear"):
    pass


class Close(_ClientMessage, tag="Close"):
    pass


ClientMessage = Speak | Flush | Clear | Close
_decoder = msgspec.json.Decoder(ClientMessage)


@dataclass(frozen=True, slots=True)
class Send:
    """A JSON text frame, or audio."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class CloseSocket:
    code: int
    reason: str


Wire = Send | CloseSocket


def warning(code: str, description: str) -> str:
    return _json({"type": "Warning", "code": code, "description": description, "warn_code": code, "warn_msg": description})


def metadata(request_id: str, model: str, provider: str, voice: str) -> str:
    return _json({
        "type": "Metadata",
        "request_id": request_id,
        "model_name": model,
        "model_version": MODEL_VERSION,
        # Stable per voice: the same provider and voice give the same id.
        "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stream-server:{provider}:{voice}")),
    })  # fmt: skip


def _json(message: dict[str, object]) -> str:
    return msgspec.json.encode(message).decode()


class Malformed(ProtocolError):
    """A frame that is not JSON at all: not this protocol; the stream is stopped with it (closed
    with 1008 `DATA-0000`)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.BAD_MESSAGE, message)


class FlushTracker:
    """Which `Flushed` are due: a `Flush` is done when every segment planned before it has ended.

    Flushes with nothing new planned between them share one entry, so the entries are bounded
    by the stream's segments (themselves bounded by its pending text)."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, int, int]] = deque()
        """(segments planned at the flush, first flush id, last flush id)"""
        self._settled = 0
        """Segments below this have ended (or were cleared)."""
        self._next_id = 0

    def flush(self, planned: int) -> list[int]:
        """A `Flush`, with `planned` segments planned so far: the ids due now."""
        flush_id = self._next_id
        self._next_id += 1
        if planned <= self._settled and not self._pending:
            return [flush_id]
        if self._pending and self._pending[-1][0] == planned:
            target, first, _ = self._pending.pop()
            self._pending.append((target, first, flush_id))
        else:
            self._pending.append((planned, flush_id, flush_id))
        return []

    def segment_ended(self, seq: int) -> list[int]:
        self._settled = max(self._settled, seq + 1)
        due: list[int] = []
        while self._pending and self._pending[0][0] <= self._settled:
            _, first, last = self._pending.popleft()
            due.extend(range(first, last + 1))
        return due

    def cleared(self, planned: int) -> None:
        """A `Clear` with `planned` segments planned so far: their flushes never complete."""
        self._pending.clear()
        self._settled = max(self._settled, planned)


@dataclass(frozen=True, slots=True)
class Command:
    """What the transport does with the stream for one client message."""

    kind: str
    """"text", "flush", "clear", "close", or "warn" (send `warning` as a reply, nothing else)."""
    text: str = ""


class DeepgramConversation:
    def __init__(self, request_id: str, model: str) -> None:
        self._request_id = request_id
        self._model = model
        self._flushes = FlushTracker()
        self._clears = 0

    # -- client messages -> commands ------------------------------------------------------------

    def receive(self, text: str) -> Command:
        """The command for one text frame. Raises `Malformed` for a frame that is not JSON."""
        try:
            message = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            return Command("warn", warning(ErrorCode.BAD_MESSAGE, f"{exc}; messages are Speak, Flush, Clear, Close"))
        except msgspec.DecodeError as exc:
            raise Malformed(f"not a JSON message ({exc})") from None
        except RecursionError:
            raise Malformed("not a JSON message (nested too deeply)") from None
        match message:
            case Speak(text=spoken):
                return Command("text", spoken)
            case Flush():
                return Command("flush")
            case Clear():
                return Command("clear")
        return Command("close")

    def refused(self, exc: ProtocolError) -> str:
        """A command the stream refused (text after `Close`, a limit): the `Warning` for it."""
        return warning(exc.code, exc.message)

    def flushed(self, planned: int) -> list[Relay]:
        """The stream took a `Flush`, with `planned` segments planned so far: the `Flushed` due
        at once, for the stream's control lane (`Stream.reply`), in order with its replies."""
        return [Relay(_flushed(i)) for i in self._flushes.flush(planned)]

    def cleared(self, planned: int) -> None:
        """The stream took a `Clear` (its `Cleared` comes with the stream's `Cancelled`)."""
        self._flushes.cleared(planned)

    # -- stream outputs -> Deepgram messages ----------------------------------------------------

    def render(self, output: Output) -> list[Wire]:
        if type(output) is EncodedFrame:
            return [Send(output.data)]
        if type(output) is SegmentEnd:
            return [Send(_flushed(i)) for i in self._flushes.segment_ended(output.seq)]
        if type(output) is Relay:
            return [Send(str(output.payload))]
        if type(output) is Ready:
            return [Send(metadata(self._request_id, self._model, output.provider, output.voice))]
        if type(output) is Cancelled:
            clear_id = self._clears
            self._clears += 1
            return [Send(_json({"type": "Cleared", "sequence_id": clear_id}))]
        if type(output) in (Warning, Error):
            # An `Error` before `Stopped` tells why the connection closes; one with a `seq` is a
            # segment that failed, while the stream goes on.
            return [Send(warning(output.code, output.message))]  # type: ignore[union-attr]
        if type(output) is Done:
            return [CloseSocket(CLOSE_NORMAL, "")]
        if type(output) is Stopped:
            return [stop_close(output.reason)]
        return []  # segment starts: nothing in Deepgram's protocol


def _flushed(sequence_id: int) -> str:
    return _json({"type": "Flushed", "sequence_id": sequence_id})


def stop_close(exc: ProtocolError) -> CloseSocket:
    """How a stream the server ended, or could not open, is closed."""
    if isinstance(exc, UnsupportedData):
        return CloseSocket(CLOSE_UNSUPPORTED_DATA, f"MESSAGE-0000: {exc.message}")
    code, name = _STOP_CLOSES.get(exc.code, (CLOSE_POLICY, "DATA-0001"))
    return CloseSocket(code, f"{name}: {exc.message}")
