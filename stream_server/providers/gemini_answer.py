"""Reading Gemini's answers: audio parts (base64, any mime type) into PCM, the finishReason, and
errors sent inside a 200. Both spellings are read: REST camelCase and the snake_case of
Vertex-style relays."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..media import PcmChunk
from .answers import decode_json, sse_events
from .base import ProviderError
from .decoding import DecodeError, StreamingDecoder, decoder_for_mime
from .http import AUTH, BAD_RESPONSE, RATE_LIMITED, REJECTED, UNAVAILABLE

SAMPLE_RATE = 24000
"""Gemini's voices speak at 24 kHz."""

# Relay B documents a top-level `audioContent` (no mime type) as LINEAR16 24 kHz mono; unconfirmed
# whether it is ever sent, so it is read as that format when it is.
_AUDIO_CONTENT_MIME = f"audio/L16;codec=pcm;rate={SAMPLE_RATE}"

# finishReason values that mean the service refused the text: the same text would fail again.
_REFUSALS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY"})

_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_case(camel: str) -> str:
    """`inlineData` -> `inline_data`."""
    return _HUMP.sub(r"_\1", camel).lower()


def get_field(obj: Any, camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling (Vertex-style relays); None if neither is there."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(snake_case(camel))


class Answer:
    """Turns the JSON objects of one answer into PCM, and remembers how the answer ended.

    Pieces of one mime type share a decoder, so an MP3 frame split across two events decodes;
    a change of mime type closes the old decoder and opens a new one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._mime: str | None = None
        self._decoder: StreamingDecoder | None = None
        self.finish_reason: str | None = None
        self.produced = False

    def take(self, event: Any) -> list[PcmChunk]:
        if not isinstance(event, dict):
            raise ProviderError(f"{self._name} sent an answer that is not a JSON object", code=BAD_RESPONSE)
        _raise_embedded_error(event, self._name)
        chunks: list[PcmChunk] = []
        candidates = get_field(event, "candidates") or []
        candidate = candidates[0] if isinstance(candidates, list) and candidates else {}
        parts = get_field(get_field(candidate, "content"), "parts") or []
        for part in parts if isinstance(parts, list) else ():
            inline = get_field(part, "inlineData")
            if inline is not None:
                chunks += self._decode(get_field(inline, "mimeType"), get_field(inline, "data"))
        if isinstance(audio := get_field(event, "audioContent"), str):
            chunks += self._decode(_AUDIO_CONTENT_MIME, audio)
        reason = get_field(candidate, "finishReason")
        if reason:
            self.finish_reason = str(reason)
        blocked = get_field(get_field(event, "promptFeedback"), "blockReason")
        if blocked:
            self.finish_reason = str(blocked)
        self.produced = self.produced or any(len(c.samples) for c in chunks)
        return chunks

    def close(self) -> list[PcmChunk]:
        chunks = self._close_decoder()
        self.produced = self.produced or any(len(c.samples) for c in chunks)
        return chunks

    def check_finish(self) -> None:
        """Raises for a finishReason other than STOP (e.g. OTHER, SAFETY)."""
        reason = self.finish_reason
        if reason is None or reason == "STOP":
            return
        if reason in _REFUSALS:
            raise ProviderError(f"{self._name} refused the text (finishReason {reason})", code=REJECTED)
        if reason == "MAX_TOKENS":
            raise ProviderError(f"{self._name} cut the audio short (finishReason {reason})", code=BAD_RESPONSE)
        # OTHER (and anything unknown) is the service's transient failure: worth a retry, which
        # the base class makes only while no audio has gone out.
        raise ProviderError(
            f"{self._name} stopped {'mid-answer' if self.produced else 'without audio'} (finishReason {reason})",
            code=BAD_RESPONSE,
            retryable=True,
        )

    def _decode(self, mime: Any, data: Any) -> list[PcmChunk]:
        if not isinstance(mime, str) or not isinstance(data, str):
            raise ProviderError(f"{self._name} sent audio without a mime type or data", code=BAD_RESPONSE)
        chunks: list[PcmChunk] = []
        key = mime.replace(" ", "").lower()
        try:
            if key != self._mime:
                chunks += self._close_decoder()
                self._decoder, self._mime = decoder_for_mime(mime), key
            assert self._decoder is not None
            return chunks + self._decoder.feed(_b64(data, self._name))
        except DecodeError:
            raise ProviderError(
                f"{self._name} sent audio that does not decode ({mime[:60]})", code=BAD_RESPONSE
            ) from None

    def _close_decoder(self) -> list[PcmChunk]:
        decoder, self._decoder, self._mime = self._decoder, None, None
        if decoder is None:
            return []
        try:
            return decoder.close()
        except DecodeError:
            raise ProviderError(f"{self._name} sent truncated audio", code=BAD_RESPONSE) from None


def _b64(data: str, name: str) -> bytes:
    try:
        if "-" in data or "_" in data:
            return base64.urlsafe_b64decode(data)
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{name} sent audio that is not base64", code=BAD_RESPONSE) from None


def _raise_embedded_error(event: dict[str, Any], name: str) -> None:
    """An error inside a 200 (Google sends `{"error": ...}` as an SSE event when a stream fails)."""
    error = event.get("error")
    if error is None:
        return
    code = get_field(error, "code") if isinstance(error, dict) else None
    status = get_field(error, "status") if isinstance(error, dict) else None
    label = " ".join(str(x) for x in (code, status) if x) or "error"
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        raise ProviderError(f"{name} is rate limiting ({label})", code=RATE_LIMITED, retryable=True)
    if code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        raise ProviderError(f"{name} refused the server's credentials ({label})", code=AUTH)
    if isinstance(code, int) and 400 <= code < 500:
        raise ProviderError(f"{name} rejected the request ({label})", code=REJECTED)
    raise ProviderError(f"{name} failed mid-answer ({label})", code=UNAVAILABLE, retryable=True)


async def sse_json_events(response: httpx.Response, name: str) -> AsyncIterator[Any]:
    """The JSON objects of an SSE body, each as soon as its event is complete.

    An event left without its blank line at the end of the body is taken too; a stream cut
    short still shows as one without its finishReason.
    """
    async for event in sse_events(response):
        if event.data and event.data.strip() != "[DONE]":  # some relays end OpenAI-style
            yield decode_json(event.data, name)


async def json_events(response: httpx.Response, name: str) -> AsyncIterator[Any]:
    """A whole JSON answer: one object, or a list of them (streamGenerateContent without SSE)."""
    body = decode_json(await response.aread(), name)
    for event in body if isinstance(body, list) else [body]:
        yield event
