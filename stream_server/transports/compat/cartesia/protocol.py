"""One Cartesia `/tts/websocket`'s rules, sans I/O: client messages in, context commands and
Cartesia messages out.

A connection carries several contexts, each one stream on the stream core:

- a generation request with a new `context_id` opens a context (its `model_id`, `voice`,
  `output_format`, `language`, `generation_config` are the stream's options, fixed for its life);
  with `continue: true` more transcripts follow, each appended (sentences are spoken as they end);
  `max_buffer_delay_ms: 0` (Pipecat's sentence mode) speaks each transcript as soon as it comes;
- `flush: true` speaks what was sent so far: `flush_done` {flush_id} follows its last chunk
  (flush ids count from 1; a chunk's `flush_id` is the flush it comes before);
- `continue: false` (or no `continue`) ends the context: the rest of its audio, then `done`;
- `{"context_id", "cancel": true}` drops the context at once, ended or not (Pipecat ends a reply's
  context, then cancels it on a barge-in): nothing more of it is sent.

Audio comes as `chunk` messages (base64 `data`), one per audio frame. A bad message is answered
with an `error` message for its context (or with `context_id: null`) and changes nothing else;
past `max_contexts` live contexts (taking text, or ended with audio still to come) a new one is refused the same way, and the socket stays open.
With `add_timestamps`, a voice that times its words (Piper, tone) sends `timestamps` messages,
`word_timestamps` {words, start, end} in seconds from the context's first audio, each before the
chunk holding its first word's start; phoneme timestamps are accepted and not sent.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ....media import EncodedFrame
from ....protocol import Alignment, Config, Done, Error, ProtocolError, SegmentEnd
from ....session import Output, Relay, Stopped
from ..deepgram.protocol import FlushTracker
from .request import Generation, Refused, decode_generation

STATUS_PARTIAL = 206
STATUS_DONE = 200
# A stream's error code -> the HTTP-like status Cartesia puts in `status_code`.
_STATUS = {"rate_limited": 429, "too_many_streams": 429, "server_busy": 503, "shutting_down": 503}


@dataclass(frozen=True, slots=True)
class Open:
    """A new context: open a stream with `config` (then the commands that follow apply to it)."""

    context_id: str
    config: Config
    speak_each_transcript: bool


@dataclass(frozen=True, slots=True)
class Text:
    context_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Flush:
    context_id: str


@dataclass(frozen=True, slots=True)
class End:
    context_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    context_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to send now, outside any context's stream (an error for a refused message)."""

    message: str


Command = Open | Text | Flush | End | Cancel | Reply
Configure = Callable[[Generation], Config]
"""A context's first request → its stream options (raises `Refused`)."""


def error_message(refused: Refused, context_id: str | None, *, done: bool = True) -> str:
    return _json({"type": "error", "context_id": context_id, "done": done, **refused.body()})


def stream_error(exc: ProtocolError) -> Refused:
    """This server's refusal (a limit, an unknown voice) in Cartesia's terms."""
    return Refused(_STATUS.get(exc.code, 400), exc.code, exc.message)


class CartesiaConversation:
    """Which contexts are open on one connection, and what each client message does to them."""

    def __init__(self, max_contexts: int) -> None:
        self._max_contexts = max_contexts
        self._open: dict[str, bool] = {}
        """Contexts taking text -> whether each transcript is spoken as it comes."""
        self._live: set[str] = set()
        """Contexts whose stream runs (taking text, or ended with audio still to come): the ones
        a cancel stops, and the ones the cap counts."""

    @property
    def live_contexts(self) -> int:
        return len(self._live)

    def receive(self, text: str, configure: Configure) -> list[Command]:
        """The commands for one text frame; `configure` turns a context's first request into its
        stream options (raising `Refused`)."""
        try:
            request = decode_generation(text)
        except Refused as exc:
            return [Reply(error_message(exc, None))]
        context_id = request.context_id
        if request.cancel:
            if context_id is None:
                return [Reply(error_message(Refused(400, "invalid_request", "a cancel needs its context_id"), None))]
            # A context that is over (or never was) has nothing to cancel: Cartesia says nothing either.
            self._open.pop(context_id, None)
            if context_id not in self._live:
                return []
            self._live.discard(context_id)
            return [Cancel(context_id)]
        if request.transcript is None:
            return [Reply(error_message(Refused(400, "invalid_request", "transcript is required"), context_id))]
        commands: list[Command] = []
        if context_id is None:
            # Without an id a request is a context of its own, spoken whole.
            context_id = uuid.uuid4().hex
            request = msgspec.structs.replace(request, continue_=False)
        if context_id in self._live and context_id not in self._open:
            refused = Refused(400, "context_ended", "this context was ended (continue: false); use a new context_id")
            return [Reply(error_message(refused, context_id, done=False))]
        if context_id not in self._open:
            if len(self._live) >= self._max_contexts:
                refused = Refused(
                    429, "too_many_contexts",
                    f"{self._max_contexts} contexts are open on this connection; end or cancel one first",
                )  # fmt: skip
                return [Reply(error_message(refused, context_id))]
            try:
                config = configure(request)
            except Refused as exc:
                return [Reply(error_message(exc, context_id))]
            self._open[context_id] = request.max_buffer_delay_ms == 0
            self._live.add(context_id)
            commands.append(Open(context_id, config, self._open[context_id]))
        speak_now = request.flush or (self._open[context_id] and request.transcript.strip() != "")
        if request.transcript:
            commands.append(Text(context_id, request.transcript))
        if not request.continue_:
            del self._open[context_id]
            commands.append(End(context_id))
        elif speak_now:
            commands.append(Flush(context_id))
        return commands

    def refused(self, context_id: str, exc: ProtocolError) -> str:
        """A command the context's stream refused (a limit): the error for it."""
        return error_message(stream_error(exc), context_id, done=False)

    def closed(self, context_id: str) -> None:
        """The context's stream is over (done, stopped, or could not open)."""
        self._open.pop(context_id, None)
        self._live.discard(context_id)


class ContextRenderer:
    """One context's stream outputs as Cartesia messages."""

    def __init__(self, context_id: str) -> None:
        self.context_id = context_id
        self._flushes = FlushTracker()
        self._flushed = 0
        """Flush ids sent so far (a chunk belongs to the next one)."""

    def flushed(self, planned: int) -> list[Relay]:
        """The stream took a flush with `planned` segments planned: the `flush_done`s due at once,
        for its control lane (in order with its other replies)."""
        return [Relay(self._flush_done(i)) for i in self._flushes.flush(planned)]

    def render(self, output: Output) -> list[str]:
        kind = type(output)
        if kind is EncodedFrame:
            data = base64.b64encode(output.data).decode()  # type: ignore[union-attr]
            return [_json({
                "type": "chunk", "data": data, "done": False, "status_code": STATUS_PARTIAL,
                "context_id": self.context_id, "flush_id": self._flushed + 1,
            })]  # fmt: skip
        if kind is Relay:
            return [str(output.payload)]  # type: ignore[union-attr]
        if kind is Alignment:
            words = output.words  # type: ignore[union-attr]
            return [_json({
                "type": "timestamps", "done": False, "status_code": STATUS_PARTIAL, "context_id": self.context_id,
                "flush_id": self._flushed + 1,
                "word_timestamps": {
                    "words": [w.text for w in words],
                    "start": [round(w.start_ms / 1000.0, 4) for w in words],
                    "end": [round(w.end_ms / 1000.0, 4) for w in words],
                },
            })]  # fmt: skip
        if kind is Done:
            return [_json({"type": "done", "done": True, "status_code": STATUS_DONE, "context_id": self.context_id})]
        if kind is Stopped:
            return [error_message(stream_error(output.reason), self.context_id)]  # type: ignore[union-attr]
        if kind is Error and output.seq is not None:  # type: ignore[union-attr]
            # A sentence that failed: said, and the context goes on with the next one.
            return [error_message(stream_error(ProtocolError(output.code, output.message)), self.context_id, done=False)]  # type: ignore[union-attr]
        if kind is SegmentEnd:
            return [self._flush_done(i) for i in self._flushes.segment_ended(output.seq)]  # type: ignore[union-attr]
        # Ready, segment starts, warnings (fallback, script), the `Error` before a `Stopped`:
        # Cartesia has no message for them.
        return []

    def _flush_done(self, flush_index: int) -> str:
        self._flushed = flush_index + 1
        return _json({
            "type": "flush_done", "done": False, "flush_done": True, "flush_id": flush_index + 1,
            "status_code": STATUS_PARTIAL, "context_id": self.context_id,
        })  # fmt: skip


def _json(message: dict[str, object]) -> str:
    return msgspec.json.encode(message).decode()
