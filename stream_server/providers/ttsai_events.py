"""Reading TTS.ai's answers: the stream's events (their format is undocumented, so read tolerantly)
and the audio in them, decoded whatever container each piece is in."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..media import PcmChunk
from .answers import SseEvent, json_object
from .base import ProviderError
from .decoding import PCM_DEFAULT_RATE, DecodeError, StreamingDecoder, decoder_for_mime, open_decoder
from .http import BAD_RESPONSE

_DONE_WORDS = frozenset({"done", "end", "complete", "completed", "finished", "stop"})
PENDING_STATUSES = frozenset({"queued", "pending", "processing", "started", "running", "in_progress"})
_AUDIO_FIELDS = ("audio", "audio_base64", "audio_chunk", "chunk", "data", "b64")
_FORMAT_FIELDS = ("mime_type", "mime", "content_type", "format", "encoding", "audio_format")
_RATE_FIELDS = ("sample_rate", "sampleRate", "rate")


def decoded(step: Callable[[bytes], list[PcmChunk]], data: bytes, name: str) -> list[PcmChunk]:
    try:
        return step(data)
    except DecodeError:
        raise ProviderError(f"{name} sent audio that does not decode", code=BAD_RESPONSE) from None


def short_message(message: object) -> str:
    if isinstance(message, dict):
        message = message.get("message") or message.get("detail")
    return str(message)[:100] if message else ""


@dataclass(frozen=True, slots=True)
class AudioPiece:
    data: bytes
    fmt: str | None  # a MIME type or a format name, if the event said
    rate: int | None


def interpret(event: SseEvent, name: str) -> AudioPiece | None:
    """One event: audio, None for the end of the stream, or a ProviderError.

    UNCONFIRMED FORMAT: TTS.ai does not document the events. Accepted: JSON objects whose audio is
    base64 in one of `_AUDIO_FIELDS` (optionally a data: URL), with an optional format or MIME
    type (`_FORMAT_FIELDS`) and sample rate (`_RATE_FIELDS`); an end marker (`[DONE]`, an event or
    `type` named done/end/complete, `"done": true`); progress events with a queue status. An
    `error` event or field, and anything else, is an error: guessing could play garbage.
    """
    data = event.data.strip()
    kind = event.event.lower()
    if kind == "error":
        raise _stream_error(name, _error_message(data))
    if data == "[DONE]" or (kind in _DONE_WORDS and not data):
        return None
    body = json_object(data, name)
    kind = str(body.get("type") or body.get("event") or kind).lower()
    status = str(body.get("status", "")).lower()
    if body.get("error") or kind == "error" or status in ("failed", "error"):
        raise _stream_error(name, short_message(body.get("error") or body.get("message")))
    if (piece := _audio_piece(body, name)) is not None:
        return piece
    if body.get("done") is True or kind in _DONE_WORDS or kind.endswith((".done", "_done")) or status in _DONE_WORDS:
        return None
    if status in PENDING_STATUSES and set(body) <= {"status", "type", "event", "uuid", "job_id", "progress"}:
        return AudioPiece(b"", None, None)
    raise ProviderError(f"{name} sent an unexpected stream event", code=BAD_RESPONSE)


def _audio_piece(body: Mapping[str, Any], name: str) -> AudioPiece | None:
    encoded = next((body[f] for f in _AUDIO_FIELDS if isinstance(body.get(f), str) and body[f]), None)
    if encoded is None:
        return None
    fmt = next((str(body[f]) for f in _FORMAT_FIELDS if isinstance(body.get(f), str) and body[f]), None)
    rate = next((body[f] for f in _RATE_FIELDS if isinstance(body.get(f), int) and body[f] > 0), None)
    if encoded.startswith("data:") and ";base64," in encoded:
        header, _, encoded = encoded.partition(";base64,")
        fmt = header[len("data:") :] or fmt
    try:
        return AudioPiece(base64.b64decode(encoded, validate=True), fmt, rate)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{name} sent audio that is not valid base64", code=BAD_RESPONSE) from None


def _error_message(data: str) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return short_message(data)
    return short_message(body.get("error") or body.get("message")) if isinstance(body, dict) else ""


def _stream_error(name: str, message: str) -> ProviderError:
    # Before any audio this is worth one more try (or the fallback); after, the segment ends.
    return ProviderError(
        f"{name} reported an error in its stream ({message or 'no reason given'})", code=BAD_RESPONSE, retryable=True
    )


def _sniff(data: bytes) -> str | None:
    """The container a piece of audio starts, if it starts one (a new file: a new decoder)."""
    if data[:4] == b"RIFF":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:3] == b"ID3":
        return "mp3"
    if data[:4] == b"OggS" and len(data) > 5 and data[5] & 0x02:  # only a beginning-of-stream page
        return "ogg"
    return None


class AudioAssembler:
    """Decodes the audio of successive events, whether they continue one stream (raw PCM, MP3
    frames, the rest of a WAV) or are each a whole file (a WAV per sentence piece): a piece that
    starts a new container closes the previous decoder and opens a fresh one."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._decoder: StreamingDecoder | None = None

    def feed(self, piece: AudioPiece) -> list[PcmChunk]:
        if not piece.data:
            return []
        out: list[PcmChunk] = []
        container = _sniff(piece.data)
        if self._decoder is None or container is not None:
            out += self.close()
            self._decoder = self._open(container, piece)
        decoder = self._decoder
        return out + decoded(decoder.feed, piece.data, self._name)

    def close(self) -> list[PcmChunk]:
        decoder, self._decoder = self._decoder, None
        return [] if decoder is None else decoded(lambda _: decoder.close(), b"", self._name)

    def _open(self, container: str | None, piece: AudioPiece) -> StreamingDecoder:
        rate = piece.rate or PCM_DEFAULT_RATE
        try:
            if container is not None:
                return open_decoder(container)
            if piece.fmt and "/" in piece.fmt:
                return decoder_for_mime(piece.fmt, sample_rate=rate)
            if piece.fmt:
                return open_decoder(piece.fmt, sample_rate=rate)
            if piece.data[0] == 0xFF and piece.data[1:2] and piece.data[1] & 0xE0 == 0xE0:
                return open_decoder("mp3")  # an MPEG frame sync, and nothing said otherwise
            return open_decoder("pcm", sample_rate=rate)  # unlabelled: s16le at 24 kHz, like Kokoro
        except DecodeError:
            raise ProviderError(f"{self._name} sent audio of an unknown type", code=BAD_RESPONSE) from None
