"""What the other vendors' WebSocket adapters share: reading bounded text frames, refusing a
handshake with an HTTP answer, and close reasons that fit a close frame."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

# RFC 6455: a close frame's payload is at most 125 bytes, two of them the code.
MAX_CLOSE_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary frame where the protocol takes only text."""


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A text frame over the server's `--max-message-bytes`."""

    limit: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The client went away."""


Frame = str | Binary | TooLarge | Disconnected


async def next_frame(websocket: WebSocket, limit: int) -> Frame:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return Disconnected()
    text = message.get("text")
    if text is None:
        return Binary()
    # len(text) bounds the UTF-8 size from below: encode only when it could matter.
    if len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit):
        return TooLarge(limit)
    return text


def close_reason(reason: str) -> str:
    """`reason`, cut to what a close frame carries (at a character boundary)."""
    data = reason.encode()
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return data[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


async def refuse_handshake(
    websocket: WebSocket, status: int, body: Mapping[str, object], headers: Mapping[str, str], close_code: int
) -> None:
    """Refuse the upgrade with an HTTP answer (what vendors do for a bad URL: the client's
    handshake error carries the status and body); where the server cannot answer a handshake
    with HTTP, accept and close with `close_code` and the body's message instead."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(dict(body), status_code=status, headers=dict(headers)))
        return
    await websocket.accept()
    await websocket.close(close_code, close_reason(str(next(iter(body.values()), ""))))
