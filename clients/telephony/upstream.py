"""A minimal client of stream_server's WebSocket protocol (docs/protocol.md) for one call's speech.

Only what the bridge needs: open a stream whose audio is 8 kHz μ-law in 20 ms frames (Twilio's
own format, so the server encodes it and the bridge only re-frames), send `text`/`flush`/`cancel`/
`end`, and iterate over the server's events and audio. It speaks the public protocol only, so the
bridge works against any deployment of the server.

The wire messages are the Python client's (`clients.python.messages`, a sibling client of this
package that imports only msgspec); the connection handling here stays the bridge's own: the
forced telephony format, the `ready` check, the bounded receive queue and the raw audio frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..python.messages import ClientMessage, Error, Ready, ServerMessage, decode, encode
from .twilio_protocol import FRAME_MS, SAMPLE_RATE

log = logging.getLogger(__name__)

# Word timings too, so that a barge-in can say which words the caller heard.
TELEPHONY_PARAMS = {
    "format": "mulaw", "sample_rate": str(SAMPLE_RATE), "frame_ms": str(FRAME_MS), "timestamps": "word",
}  # fmt: skip
OPEN_TIMEOUT_S = 10.0
# The websockets library buffers at most this many incoming messages (its own flow control).
RECEIVE_QUEUE_MESSAGES = 32


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
            await self._connection.send(encode(message))

    async def events(self) -> AsyncIterator[ServerMessage | bytes]:
        """Audio frames (bytes) and events in arrival order, until the server closes the stream."""
        try:
            async for data in self._connection:
                if isinstance(data, bytes):
                    yield data
                    continue
                try:
                    event = decode(data)
                except msgspec.DecodeError as exc:
                    # One bad message should not drop the call's speech: skip it.
                    log.warning("skipping malformed server message (%s): %.200s", exc, data)
                    continue
                if event is None:
                    # A message type this adapter does not know (the protocol may grow).
                    log.debug("skipping unknown server message %.200s", data)
                    continue
                yield event
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
            first = decode(await connection.recv())
        if isinstance(first, Error):
            raise UpstreamRefused(f"{first.code}: {first.message}")
        if not isinstance(first, Ready):
            got_type = "an unknown message" if first is None else f"`{first.__struct_config__.tag}`"
            raise UpstreamRefused(f"expected `ready`, got {got_type}")
        got = (first.format, first.sample_rate, first.frame_ms)
        if got != ("mulaw", SAMPLE_RATE, FRAME_MS):
            raise UpstreamRefused(f"server offers {got}, not ('mulaw', {SAMPLE_RATE}, {FRAME_MS})")
    except BaseException:
        await connection.close()
        raise
    return UpstreamStream(connection, first)
