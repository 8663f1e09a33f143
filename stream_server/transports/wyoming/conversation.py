"""One Wyoming connection's rules, sans I/O: client events in, stream commands and Wyoming events out.

A connection takes one request at a time, as Home Assistant sends them:

- `synthesize` (the whole text) -> one `audio-start`, the `audio-chunk`s, one `audio-stop`;
- `synthesize-start` -> `synthesize-chunk`s (text as it is produced) -> the compatibility
  `synthesize` with the whole text again (ignored) -> `synthesize-stop`; answered per sentence
  with `audio-start` / `audio-chunk`s / `audio-stop` as each is synthesized, then
  `synthesize-stopped`.

`describe` is answered with `info` at any time, `ping` with `pong`. Every refusal is an `error`
event with a stable `code` and leaves the connection usable. Audio is the stream's pcm: s16le
mono at one rate for the whole request (a fallback provider's audio is resampled to it), since
Home Assistant writes one WAV header from the first `audio-start`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error as WyomingError
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from ...media import EncodedFrame
from ...protocol import Done, Error, ErrorCode, ProtocolError, SegmentEnd, SegmentStart
from ...session import Output, Stopped
from .voices import PROGRAM, Voices

PCM_WIDTH = 2
PCM_CHANNELS = 1
REQUEST_IN_PROGRESS = "request_in_progress"
"""A request event while another request of the same connection is still being answered."""
_SELECT_PROGRAM = "select-program"


class Phase(enum.Enum):
    IDLE = "idle"
    ONE_SHOT = "one_shot"
    STREAMING = "streaming"
    """After `synthesize-start`; text comes in `synthesize-chunk`s until `synthesize-stop`."""
    ENDING = "ending"
    """After `synthesize-stop`: the rest of the audio, then `synthesize-stopped`."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Write this event now."""

    event: Event


@dataclass(frozen=True, slots=True)
class Open:
    """Open a stream with this voice ((provider, voice id); None: the defaults). `text`: the whole
    text of a one-shot request, pushed and ended at once; None: streaming, text follows."""

    voice: tuple[str, str] | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Feed:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a streaming request's text."""


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection (after the replies before it): a refused request. Its client waits for
    `audio-stop` or `synthesize-stopped`, which will not come; the end of the connection tells it."""


Command = Reply | Open | Feed | Finish | Close


def error_event(code: str, message: str) -> Event:
    return WyomingError(text=message, code=code).event()


class Conversation:
    def __init__(self, voices: Voices) -> None:
        self._voices = voices
        self.phase = Phase.IDLE
        self._rate = 0
        self._audio_open = False

    # -- client events -> commands ----------------------------------------------------------------

    def receive(self, event: Event) -> list[Command]:
        """The commands for one client event. A request refused while nothing else is being
        answered ends with `Close`; any other refusal leaves the connection as it was."""
        idle = self.phase is Phase.IDLE
        commands = self._receive(event)
        refused = len(commands) == 1 and type(commands[0]) is Reply and commands[0].event.type == "error"
        if refused and idle and (Synthesize.is_type(event.type) or SynthesizeStart.is_type(event.type)):
            return [*commands, Close()]
        return commands

    def _receive(self, event: Event) -> list[Command]:
        kind = event.type
        try:
            if Describe.is_type(kind):
                return [Reply(self._voices.info().event())]
            if Ping.is_type(kind):
                return [Reply(Pong(text=Ping.from_event(event).text).event())]
            if kind == _SELECT_PROGRAM:
                return self._select_program(event)
            if Synthesize.is_type(kind):
                return self._synthesize(event)
            if SynthesizeStart.is_type(kind):
                self._require(Phase.IDLE, kind)
                voice = self._voice(SynthesizeStart.from_event(event).voice)
                self.phase = Phase.STREAMING
                return [Open(voice, None)]
            if SynthesizeChunk.is_type(kind):
                self._require(Phase.STREAMING, kind)
                return [Feed(_text(event))]
            if SynthesizeStop.is_type(kind):
                self._require(Phase.STREAMING, kind)
                self.phase = Phase.ENDING
                return [Finish()]
        except ProtocolError as exc:
            return [Reply(error_event(exc.code, exc.message))]
        except (KeyError, TypeError, AttributeError, ValueError):
            return [Reply(error_event(ErrorCode.BAD_MESSAGE, f"{kind!r} event with malformed data"))]
        return [Reply(error_event(ErrorCode.BAD_MESSAGE, f"unknown event type {kind[:64]!r}; this is a tts server"))]

    def _synthesize(self, event: Event) -> list[Command]:
        if self.phase is Phase.STREAMING:
            return []  # the whole text again, for servers without streaming: already had it in chunks
        self._require(Phase.IDLE, event.type)
        text = _text(event)
        voice = self._voice(Synthesize.from_event(event).voice)
        self.phase = Phase.ONE_SHOT
        return [Open(voice, text)]

    def _select_program(self, event: Event) -> list[Command]:
        name = event.data.get("name")
        if name in ("tts", PROGRAM):
            return []
        message = f"no program {str(name)[:64]!r}; the tts program is {PROGRAM!r}"
        return [Reply(error_event(ErrorCode.BAD_MESSAGE, message))]

    def _voice(self, requested: SynthesizeVoice | None) -> tuple[str, str] | None:
        return self._voices.resolve(requested)

    def _require(self, phase: Phase, kind: str) -> None:
        if self.phase is phase:
            return
        if self.phase is Phase.IDLE:
            message = f"{kind!r} outside a streaming request (send synthesize-start first)"
            raise ProtocolError(ErrorCode.BAD_MESSAGE, message)
        raise ProtocolError(REQUEST_IN_PROGRESS, f"{kind!r} while the request before it is being answered")

    # -- the stream's lifecycle -------------------------------------------------------------------

    def opened(self, sample_rate: int) -> None:
        """The request's stream is open, with pcm at `sample_rate`."""
        self._rate = sample_rate
        self._audio_open = False

    def refused(self, exc: ProtocolError) -> list[Command]:
        """The request's stream could not open (a limit, shutting down): say why, and close."""
        self.phase = Phase.IDLE
        return [Reply(error_event(exc.code, exc.message)), Close()]

    def over(self) -> None:
        """The request's stream ended (answered, stopped or gone)."""
        self.phase = Phase.IDLE

    # -- stream outputs -> events -------------------------------------------------------------------

    def render(self, output: Output) -> list[Event]:
        """The events that carry one output of the request's stream."""
        streaming = self.phase in (Phase.STREAMING, Phase.ENDING)
        if type(output) is EncodedFrame:
            events = [] if self._audio_open else [self._audio_start()]
            self._audio_open = True
            chunk = AudioChunk(rate=self._rate, width=PCM_WIDTH, channels=PCM_CHANNELS, audio=output.data)
            return [*events, chunk.event()]
        if type(output) is SegmentStart:
            if self._audio_open:
                return []  # one-shot: one audio-start for the whole text
            self._audio_open = True
            return [self._audio_start()]
        if type(output) is SegmentEnd:
            if not streaming or not self._audio_open:
                return []
            self._audio_open = False
            return [AudioStop().event()]
        if type(output) is Done:
            if streaming:
                closing = [AudioStop().event()] if self._audio_open else []
                return [*closing, SynthesizeStopped().event()]
            # One-shot: Home Assistant reads until audio-stop, and builds its WAV from audio-start.
            opening = [] if self._audio_open else [self._audio_start()]
            self._audio_open = False
            return [*opening, AudioStop().event()]
        if type(output) is Error:
            return [error_event(output.code, output.message)]
        if type(output) is Stopped:
            return []  # its `Error` went just before; the connection closes
        return []  # ready, warnings (a fallback took over, a script): nothing in Wyoming for them

    def _audio_start(self) -> Event:
        return AudioStart(rate=self._rate, width=PCM_WIDTH, channels=PCM_CHANNELS).event()


def _text(event: Event) -> str:
    text = event.data["text"]
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{event.type!r}: `text` must be a string")
    return text
