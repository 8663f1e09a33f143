"""Closing a WebSocket whose client may have stopped reading.

The close frame goes out whether or not the client reads (it is not queued behind what it left
unread), but a socket that takes nothing more is given up on after `CLOSE_TIMEOUT_S`; a client
already gone is not an error.
"""

from __future__ import annotations

import contextlib
from typing import Final

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

CLOSE_TIMEOUT_S: Final = 5.0


async def close_in_time(websocket: WebSocket, code: int, reason: str = "") -> None:
    # RuntimeError: uvicorn closed it under us (1007, 1009) and refuses to send more.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        with anyio.fail_after(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)
