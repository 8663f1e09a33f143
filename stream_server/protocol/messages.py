"""Every message of the WebSocket protocol, as msgspec Structs tagged by their `type` field.

Client → server messages are JSON text frames. Server → client control messages are JSON text
frames; audio travels in binary frames and has no Struct here. See docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Speed = Annotated[float, Meta(ge=0.25, le=4.0)]
SampleRate = Annotated[int, Meta(gt=0)]
FrameMs = Annotated[int, Meta(gt=0)]
Language = Annotated[str, Meta(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]
EagerWords = Annotated[int, Meta(ge=0, le=100)]
TimeoutMs = Annotated[int, Meta(ge=0, le=60_000)]
EmojiMode = Literal["skip", "read"]
TimestampsMode = Literal["word", "char", "none"]
PlayedMs = Annotated[float, Meta(ge=0)]
ContextId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
"""Names one of several streams on a socket (docs/protocol.md, "Contexts"); absent: the default one."""


class _ClientMessage(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class Config(_ClientMessage, tag="config", kw_only=True):
    """Stream settings; only as the first message (of the socket, or of a context: it opens the
    context with these settings). The URL's query parameters take the same names."""

    context: ContextId | None = None

    provider: str | None = None
    voice: str | None = None
    format: str | None = None
    sample_rate: SampleRate | None = None
    frame_ms: FrameMs | None = None
    speed: Speed | None = None
    language: Language | None = None
    """Language of the text, for sentence segmentation (e.g. "de", "pt-BR"); default: the voice's."""
    eager_first_segment: EagerWords | None = None
    """Cut the first segment at the first comma after this many words (0: off), for faster first audio."""
    boundary_timeout_ms: TimeoutMs | None = None
    """After this long without new text, a possible sentence end is taken as one (0: never)."""
    max_lead_ms: TimeoutMs | None = None
    """Send audio at most this far ahead of real time (0: as fast as it is made)."""
    emoji: EmojiMode | None = None
    """"skip" (default): emoji are taken out of the text the provider gets; "read": left in
    (voices read them by name)."""
    timestamps: TimestampsMode | None = None
    """"word": an `alignment` message before the audio of each word (from providers that give
    timings); "char": with each character's times too; "none" (default): no `alignment`."""


class Text(_ClientMessage, tag="text"):
    """Append text; any chunking, down to one character. Naming a context not open opens it."""

    text: str
    context: ContextId | None = None


class Flush(_ClientMessage, tag="flush"):
    """Synthesize what is buffered now, even without a sentence end."""

    context: ContextId | None = None


class Cancel(_ClientMessage, tag="cancel"):
    """Barge-in: drop buffered text, pending segments and queued audio at once."""

    context: ContextId | None = None
    played_ms: PlayedMs | None = None
    """How much of the stream's audio the client has played (ms from its first frame): the
    `cancelled` reply then names the last word heard."""


class End(_ClientMessage, tag="end"):
    """End of input: the rest is synthesized, then `done`, then close 1000. With a context: that
    context's end (its `done`; the socket stays open); without: every context's."""

    context: ContextId | None = None


ClientMessage = Config | Text | Flush | Cancel | End


class _ServerMessage(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class Ready(_ServerMessage, tag="ready", kw_only=True):
    """The effective stream configuration."""

    provider: str
    voice: str
    format: str
    mime: str
    """The media type of the audio, for a player (e.g. MediaSource needs it for webm_opus)."""
    sample_rate: int
    channels: int
    frame_ms: int
    speed: float
    language: str
    eager_first_segment: int
    boundary_timeout_ms: int
    max_segment_chars: int
    max_lead_ms: int
    max_segment_bytes: int | None = None
    idle_timeout_s: float | None = None
    """The stream is closed (`error` `idle_timeout`) after this long waiting for text with nothing to send."""
    max_stream_s: float | None = None
    """The longest a stream may stay open (`error` `stream_too_long`)."""
    emoji: str | None = None
    """"skip" or "read" (always sent; None only to keep older constructions valid)."""
    timestamps: str | None = None
    """"word", "char" or "none" (always sent; None only to keep older constructions valid)."""
    context: str | None = None
    """The context this message is about (absent: the default context). On every server message."""


class SegmentStart(_ServerMessage, tag="segment"):
    """Sent just before the first audio frame of segment `seq`."""

    seq: int
    text: str
    context: str | None = None


class SegmentEnd(_ServerMessage, tag="segment_end"):
    """Sent after the last audio frame of segment `seq`."""

    seq: int
    audio_ms: float
    context: str | None = None


class AlignedWord(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A word as the client's text writes it, and when it is heard on the stream's timeline (ms
    from the stream's first audio frame). `char_start`/`char_end`: its offsets in all the text
    the client sent on this stream (absent where they are not known)."""

    text: str
    start_ms: float
    end_ms: float
    char_start: int | None = None
    char_end: int | None = None


class AlignedChar(msgspec.Struct, kw_only=True):
    char: str
    start_ms: float
    end_ms: float


class HeardWord(AlignedWord, kw_only=True):
    """A word of segment `seq` (in the `cancelled` reply)."""

    seq: int


class Alignment(_ServerMessage, tag="alignment", kw_only=True):
    """When the words of segment `seq` are heard (`timestamps`: "word" or "char"): sent before
    the audio frame holding the first word's start; each word in exactly one `alignment`."""

    seq: int
    words: list[AlignedWord]
    chars: list[AlignedChar] | None = None
    """With `timestamps: "char"`: each character of the words, in order (not the spaces between)."""
    context: str | None = None


class Cancelled(_ServerMessage, tag="cancelled", kw_only=True):
    """Follows the last audio frame that was sent before a `cancel` took effect.

    With word timings (providers that give them): `last_sent`, the last word whose audio had
    begun to be sent, and with the `cancel`'s `played_ms`, `last_heard`, the last word whose
    start the client had played (absent: no word yet, or older than the stream remembers)."""

    audio_ms: float | None = None
    """The stream's audio sent so far (ms): the timeline position the cancel took effect at."""
    played_ms: float | None = None
    last_sent: HeardWord | None = None
    last_heard: HeardWord | None = None
    context: str | None = None


class Done(_ServerMessage, tag="done", kw_only=True):
    """Per-stream statistics, sent after the last audio frame once input has ended."""

    segments: int
    audio_ms: float
    text_chars: int
    elapsed_ms: float
    ttfa_ms: float | None = None
    """Time to first audio: from the moment the first segment was complete to its first frame."""
    provider_ms: float | None = None
    """The part of `ttfa_ms` the provider took: to its first audio of that segment. The rest is
    the server's own (encoding, buffering, sending)."""
    context: str | None = None


class Error(_ServerMessage, tag="error", kw_only=True):
    code: str
    message: str
    seq: int | None = None
    retry_after_ms: int | None = None
    """Rate limits: when the refused request may succeed."""
    context: str | None = None


class Warning(_ServerMessage, tag="warning", kw_only=True):
    """Something went wrong but was handled (e.g. a fallback provider took over a segment)."""

    code: str
    message: str
    seq: int | None = None
    context: str | None = None


ServerMessage = Ready | SegmentStart | SegmentEnd | Alignment | Cancelled | Done | Error | Warning
