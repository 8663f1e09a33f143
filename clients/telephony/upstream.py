"""A minimal client of stream_server's WebSocket protocol (docs/protocol.md) for one call's speech.

Only what the bridge needs: open a stream whose audio is 8 kHz μ-law in 20 ms frames (Twilio's
own format, so the server encodes it and the bridge only re-frames), send `text`/`flush`/`cancel`/
`end`, and iterate over the server's events and audio. It speaks the public protocol only, so the
bridge works against any deployment of the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .twilio_protocol import FRAME_MS, SAMPLE_RATE

log = logging.getLogger(__name__)

TELEPHONY_PARAMS = {"format": "mulaw", "sample_rate": str(SAMPLE_RATE), "frame_ms": str(FRAME_MS)}
OPEN_TIMEOUT_S = 10.0
# The websockets library buffers at most this many incoming messages (its own flow control).
RECEIVE_QUEUE_MESSAGES = 32


class _Server(msgspec.Struct, tag_field="type"):
    pass


class Ready(_Server, tag="ready", kw_only=True):
    format: str
    sample_rate: int
    frame_ms: int
    provider: str = ""
    voice: str = ""


class Segment(_Server, tag="segment"):
    seq: int
    text: str


class SegmentEnd(_Server, tag="segment_end"):
    seq: int
    audio_ms: float


class Cancelled(_Server, tag="cancelled"):
    pass


class Done(_Server, tag="done", kw_only=True):
    segments: int
    audio_ms: float


class ServerError(_Server, tag="error", kw_only=True):
    code: str
    message: str
    seq: int | None = None


class ServerWarning(_Server, tag="warning", kw_only=True):
    code: str
    message: str
    seq: int | None = None


ServerEvent = Ready | Segment | SegmentEnd | Cancelled | Done | ServerError | ServerWarning


class _Client(msgspec.Struct, tag_field="type"):
    pass


class Text(_Client, tag="text"):
    text: str


class Flush(_Client, tag="flush"):
    pass


class Cancel(_Client, tag="cancel"):
    pass


class End(_Client, tag="end"):
    pass


ClientMessage = Text | Flush | Cancel | End

_decoder = msgspec.json.Decoder(ServerEvent)
_encoder = msgspec.json.Encoder()


class UpstreamRefused(Exception):
    """The server refused the stream (an `error` instead of `ready`, or a format it cannot give us)."""


def telephony_url(server_url: str) -> str:
    """The server's stream URL with the telephony format forced (other parameters, e.g. voice, kept)."""
    parts = urlsplit(server_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in TELEPHONY_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(query + list(TELEPHONY_PARAMS.items()))))


class UpstreamStream:
    """One stream on the server. Sends are serialized so `text` then `flush` stay in order."""

    def __init__(self, connection: ClientConnection, ready: Ready) -> None:
        self._connection = connection
        self._send_lock = asyncio.Lock()
        self.ready = ready

    async def send(self, message: ClientMessage) -> None:
        async with self._send_lock:
            await self._connection.send(_encoder.encode(message).decode())

    async def events(self) -> AsyncIterator[ServerEvent | bytes]:
        """Audio frames (bytes) and events in arrival order, until the server closes the stream."""
        try:
            async for data in self._connection:
                if isinstance(data, bytes):
                    yield data
                    continue
                try:
                    yield _decoder.decode(data)
                except msgspec.DecodeError:
                    # A message type this adapter does not use (the protocol may grow): skip it.
                    log.debug("skipping unknown server message %.200s", data)
        except ConnectionClosed as closed:
            log.warning("upstream stream closed abnormally: %s", closed)

    async def close(self) -> None:
        await self._connection.close()


async def open_upstream(server_url: str, api_key: str | None = None) -> UpstreamStream:
    """Connect, and wait for `ready` confirming 8 kHz μ-law in 20 ms frames."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    connection = await connect(
        telephony_url(server_url),
        additional_headers=headers,
        open_timeout=OPEN_TIMEOUT_S,
        max_queue=RECEIVE_QUEUE_MESSAGES,
    )
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            first = _decoder.decode(await connection.recv())
        if isinstance(first, ServerError):
            raise UpstreamRefused(f"{first.code}: {first.message}")
        if not isinstance(first, Ready):
            raise UpstreamRefused(f"expected ready, got {type(first).__name__}")
        got = (first.format, first.sample_rate, first.frame_ms)
        if got != ("mulaw", SAMPLE_RATE, FRAME_MS):
            raise UpstreamRefused(f"server offers {got}, not ('mulaw', {SAMPLE_RATE}, {FRAME_MS})")
    except BaseException:
        await connection.close()
        raise
    return UpstreamStream(connection, first)
