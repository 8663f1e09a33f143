"""One ElevenLabs `stream-input` or `multi-stream-input` WebSocket's rules, sans I/O: client
messages in, stream commands and ElevenLabs messages out.

Every message is one JSON object: `text`, and as the case may be `context_id` (multi only),
`flush`, `try_trigger_generation`, `voice_settings`, `generation_config`, `xi-api-key` /
`authorization`, `close_context`, `close_socket`. A context is one stream of the core:

- its first message opens it (`{"text": " ", "voice_settings": {…}}`; `voice_settings.speed` is
  the stream's speed), text goes to the stream (cut into sentences as it comes: audio starts at
  the first sentence end, whatever `chunk_length_schedule` says), `flush` is the stream's flush;
- `{"text": ""}` ends the single socket's input (the rest of the audio, `{"isFinal": true}`,
  close 1000); on multi it keeps a context alive;
- `close_context` closes a context as ElevenLabs' AsyncAPI says: what was set to flush goes on
  flushing. Right after a `flush` (no text since) its audio plays out; with text sent since the
  last flush (a barge-in: Pipecat and LiveKit close an interrupted context without flushing) the
  context's audio stops at once (the stream's cancel). Then `{"isFinal": true, "contextId"}`;
- `close_socket` closes every context that way, and the socket once the last `isFinal` is out;
- at most `max_contexts` contexts take input at once (one more is refused with ElevenLabs'
  `max_active_conversations` error, the socket stays), and at most as many more may still be
  finishing their audio.

From a voice that times its words (Piper, tone), an audio message carries `alignment` and
`normalizedAlignment` for the words that start in it (alignment.py), whatever `sync_alignment` says.

Errors are ElevenLabs' `{"message", "error", "code"}` (+ `contextId`): on multi, bad input
is answered and the socket stays; on the single socket it closes with the code.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

from ....media import EncodedFrame
from ....protocol import Alignment, Cancelled, Done, Error, ErrorCode, ProtocolError
from ....session import Output, Relay, Stopped
from .alignment import AlignmentClock
from .request import Refused, voice_speed

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN = 1013

MAX_CONTEXT_ID_CHARS = 128
MAX_CONTEXTS_ERROR = "max_active_conversations"

# This server's error codes, as ElevenLabs names them where it has a name, and the close code.
_ERRORS: dict[str, tuple[str, int]] = {
    ErrorCode.MESSAGE_TOO_LARGE: ("message_too_large", CLOSE_TOO_BIG),
    ErrorCode.IDLE_TIMEOUT: ("input_timeout_exceeded", CLOSE_POLICY),
    ErrorCode.STREAM_TOO_LONG: ("max_duration_exceeded", CLOSE_POLICY),
    ErrorCode.SHUTTING_DOWN: ("shutting_down", CLOSE_GOING_AWAY),
    ErrorCode.SERVER_BUSY: ("system_busy", CLOSE_TRY_AGAIN),
    ErrorCode.TOO_MANY_STREAMS: ("too_many_concurrent_requests", CLOSE_TRY_AGAIN),
    ErrorCode.RATE_LIMITED: ("rate_limit_exceeded", CLOSE_TRY_AGAIN),
    ErrorCode.UNAUTHORIZED: ("invalid_api_key", CLOSE_POLICY),
    ErrorCode.BAD_MESSAGE: ("invalid_request", CLOSE_POLICY),
    ErrorCode.INTERNAL_ERROR: ("internal_error", CLOSE_SERVER_ERROR),
}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class VoiceSettings(_Strict):
    stability: Annotated[float, Meta(ge=0, le=1)] | None = None
    similarity_boost: Annotated[float, Meta(ge=0, le=1)] | None = None
    style: Annotated[float, Meta(ge=0, le=1)] | None = None
    use_speaker_boost: bool | None = None
    speed: float | None = None


class GenerationConfig(_Strict):
    chunk_length_schedule: list[Annotated[float, Meta(ge=50, le=500)]] | None = None


class DictionaryLocator(_Strict):
    pronunciation_dictionary_id: str
    version_id: str | None = None


class ClientMessage(_Strict):
    text: str | None = None
    context_id: Annotated[str, Meta(min_length=1, max_length=MAX_CONTEXT_ID_CHARS)] | None = None
    flush: bool = False
    try_trigger_generation: bool | None = None
    voice_settings: VoiceSettings | None = None
    generation_config: GenerationConfig | None = None
    generator_config: GenerationConfig | None = None  # the SDK's `SendText` spelling
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = None
    xi_api_key: str | None = msgspec.field(default=None, name="xi-api-key")
    xi_api_key_snake: str | None = msgspec.field(default=None, name="xi_api_key")
    authorization: str | None = None
    close_context: bool = False
    close_socket: bool = False


_decoder = msgspec.json.Decoder(ClientMessage)


# -- what the transport does ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The first message's key (None: it brought none)."""

    key: str | None


@dataclass(frozen=True, slots=True)
class Open:
    """Open a stream for `context` (None: the socket's one context), at `speed`."""

    context: str | None
    speed: float | None


@dataclass(frozen=True, slots=True)
class Command:
    """`kind` on the context's stream: "text", "flush", "end" (the rest plays out), "drop" (cancel,
    then end: `isFinal` at once), "keepalive" (the idle clock only)."""

    context: str | None
    kind: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """Send an error message (through the context's stream when it has one); `close` (single
    socket, or what cannot be tied to a context): close the socket with that code after it."""

    context: str | None
    message: str
    close: int | None = None


@dataclass(frozen=True, slots=True)
class CloseSocket:
    code: int
    reason: str = ""


Action = Authenticate | Open | Command | Answer | CloseSocket


@dataclass(frozen=True, slots=True)
class Send:
    data: str


Wire = Send | CloseSocket


def error_message(code: str, message: str, context: str | None = None, *, close: int = CLOSE_POLICY) -> str:
    body: dict[str, object] = {"message": message, "error": code, "code": close}
    if context is not None:
        body["contextId"] = context
    return msgspec.json.encode(body).decode()


def elevenlabs_error(exc: ProtocolError) -> tuple[str, int]:
    """ElevenLabs' name for this server's error, and the close code it goes with."""
    return _ERRORS.get(exc.code, (str(exc.code), CLOSE_POLICY))


class ElevenLabsConversation:
    def __init__(self, *, multi: bool, max_contexts: int) -> None:
        self.multi = multi
        self._max_contexts = max_contexts
        self._open: set[str | None] = set()
        """Contexts taking input."""
        self._finishing: set[str | None] = set()
        """Contexts whose input ended: their audio plays out, then `isFinal`."""
        self._unflushed: set[str | None] = set()
        """Open contexts given text since their last flush."""
        self._clocks: dict[str | None, AlignmentClock] = {}
        """Each context's word timings waiting for its next audio message (one per live context)."""
        self._first = True
        self._closed = False
        self._closing = False
        """`close_socket`: the socket closes when its last context is over."""

    @property
    def contexts(self) -> int:
        return len(self._open) + len(self._finishing)

    # -- client messages -> actions -------------------------------------------------------------

    def receive(self, text: str) -> list[Action]:
        if self._closed or self._closing:
            return []
        try:
            message = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            return [self._bad(None, f"{exc}")]
        except msgspec.DecodeError as exc:
            return [self._bad(None, f"not a JSON message ({exc})")]
        except RecursionError:
            return [self._bad(None, "not a JSON message (nested too deeply)")]
        actions: list[Action] = []
        if self._first:
            self._first = False
            key = message.xi_api_key or message.xi_api_key_snake or _bearer(message.authorization)
            actions.append(Authenticate(key))
        actions.extend(self._act(message))
        return actions

    def unusable(self, why: str, close: int) -> list[Action]:
        """A frame that is not text, or too large: refused; the single socket closes with `close`."""
        if self.multi:
            return [Answer(None, error_message("invalid_request", why, close=close))]
        self._closed = True
        return [Answer(None, error_message("invalid_request", why, close=close), close=close)]

    def _act(self, message: ClientMessage) -> list[Action]:
        context = message.context_id
        if not self.multi and (context is not None or message.close_context or message.close_socket):
            return [self._bad(None, "context_id, close_context and close_socket are multi-stream-input's")]
        if message.close_socket:
            self._closing = True
            closing: list[Action] = [self._close(open_context) for open_context in list(self._open)]
            return closing if self.contexts else [*closing, *self._close_socket()]
        if message.close_context:
            if context not in self._open:
                return []  # closed already, or never opened: nothing to do
            return [self._close(context)]
        actions: list[Action] = []
        if context not in self._open:
            if context in self._finishing:
                if message.text:
                    return [self._bad(context, f"context {context!r} is closing; open a new one")]
                return []
            if message.text == "" or (message.text is None and not message.flush):
                return []  # a keep-alive for no context: the socket is alive
            opened = self._open_context(context, message)
            if type(opened) is Answer:
                return [opened]
            actions.append(opened)
            if message.text is not None and not message.text.strip() and not message.flush:
                return actions  # the context's opening `{"text": " "}`
        if message.text == "" and not message.flush:
            if self.multi:
                return [*actions, Command(context, "keepalive")]
            self._open.discard(context)
            self._finishing.add(context)
            return [*actions, Command(context, "end")]
        if message.text:
            actions.append(Command(context, "text", message.text))
            self._unflushed.add(context)
        if message.flush:
            actions.append(Command(context, "flush"))
            self._unflushed.discard(context)
        return actions

    def _close(self, context: str | None) -> Command:
        self._open.discard(context)
        self._finishing.add(context)
        if context in self._unflushed:
            self._unflushed.discard(context)
            return Command(context, "drop")
        return Command(context, "end")

    def _close_socket(self) -> list[Action]:
        self._closed = True
        return [CloseSocket(CLOSE_NORMAL)]

    def _open_context(self, context: str | None, message: ClientMessage) -> Open | Answer:
        if len(self._open) >= self._max_contexts or self.contexts >= 2 * self._max_contexts:
            return Answer(
                context,
                error_message(
                    MAX_CONTEXTS_ERROR,
                    f"Maximum simultaneous contexts per WebSocket connection exceeded ({self._max_contexts}). "
                    "Please close an existing context before opening a new one.",
                    context,
                ),
            )
        try:
            speed = voice_speed(message.voice_settings.speed if message.voice_settings else None)
        except Refused as exc:
            return self._bad(context, exc.message)
        self._open.add(context)
        return Open(context, speed)

    def _bad(self, context: str | None, why: str) -> Answer:
        close = None if self.multi else CLOSE_POLICY
        if close is not None:
            self._closed = True
        return Answer(context, error_message("invalid_request", why, context), close)

    def refused(self, context: str | None, exc: ProtocolError) -> Answer:
        """A command the stream refused (a limit: pending text, the key's characters): said; the
        text is dropped and the context goes on."""
        return Answer(context, error_message(elevenlabs_error(exc)[0], exc.message, context))

    def not_opened(self, context: str | None, exc: ProtocolError | Refused) -> Answer:
        """The context's stream could not open (the server or the key at its limit)."""
        self._open.discard(context)
        self._unflushed.discard(context)
        if isinstance(exc, Refused):
            name, close = exc.code, CLOSE_POLICY
        else:
            name, close = elevenlabs_error(exc)
        if not self.multi:
            self._closed = True
            return Answer(None, error_message(name, exc.message, close=close), close)
        return Answer(context, error_message(name, exc.message, context, close=close))

    def finished(self, context: str | None) -> list[Action]:
        """The context's stream is over (its `isFinal` or its error went out); after
        `close_socket`, the last one closes the socket."""
        self._open.discard(context)
        self._finishing.discard(context)
        self._unflushed.discard(context)
        self._clocks.pop(context, None)
        if self._closing and not self._closed and not self.contexts:
            return self._close_socket()
        return []

    # -- stream outputs -> ElevenLabs messages --------------------------------------------------

    def render(self, context: str | None, output: Output) -> list[Wire]:
        if type(output) is EncodedFrame:
            message: dict[str, object] = {"audio": base64.b64encode(output.data).decode()}
            clock = self._clocks.get(context)
            if clock is not None and (alignment := clock.take()) is not None:
                message["alignment"] = message["normalizedAlignment"] = alignment
            return [Send(self._with_context(message, context))]
        if type(output) is Alignment:
            self._clocks.setdefault(context, AlignmentClock()).add(output)
            return []
        if type(output) is Cancelled:
            if (clock := self._clocks.get(context)) is not None:
                clock.drop()
            return []
        if type(output) is Relay:
            return [Send(str(output.payload))]
        if type(output) is Done:
            final = [Send(self._with_context({"isFinal": True}, context))]
            return final if self.multi else [*final, CloseSocket(CLOSE_NORMAL)]
        if type(output) is Error and output.seq is not None:
            # One sentence failed; the stream goes on with the next.
            return [Send(error_message("synthesis_failed", output.message, context, close=CLOSE_SERVER_ERROR))]
        if type(output) is Stopped:
            name, close = elevenlabs_error(output.reason)
            sent = [Send(error_message(name, output.reason.message, context, close=close))]
            return sent if self.multi else [*sent, CloseSocket(close, f"{name}: {output.reason.message}")]
        return []  # ready, segment marks, warnings, the `Error` before `Stopped`: nothing in ElevenLabs'

    def _with_context(self, message: dict[str, object], context: str | None) -> str:
        if self.multi and context is not None:
            message["contextId"] = context
        return msgspec.json.encode(message).decode()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    return credential.strip() if credential and scheme.lower() == "bearer" else authorization.strip()

