"""One stream over the WebSocket (`/v1/tts/stream`): tokens out, audio and events in."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .corpus import Passage
from .feeder import feed_tokens
from .observer import StreamObserver
from .spec import StreamSpec, frame_duration_ms

STREAM_PATH = "/v1/tts/stream"
_decode = msgspec.json.Decoder().decode


def stream_url(base_ws: str, spec: StreamSpec) -> str:
    return f"{base_ws}{STREAM_PATH}?{urlencode(spec.config_fields())}"


async def _receive(ws: ClientConnection, observer: StreamObserver, ready: dict[str, object]) -> None:
    async for message in ws:  # ends when the server closes
        now = time.perf_counter()
        if isinstance(message, bytes):
            observer.audio(now, frame_duration_ms(ready, len(message)))
            continue
        payload = _decode(message)
        kind = payload.get("type")
        if kind == "segment":
            observer.segment(now, str(payload.get("text", "")))
        elif kind == "segment_end":
            observer.segment_end(now)
        elif kind == "done":
            observer.finished(now, payload)
        elif kind in ("error", "warning"):
            observer.error(f"{kind} {payload.get('code')}: {payload.get('message')}")


async def run_ws_stream(
    base_ws: str,
    spec: StreamSpec,
    passage: Passage,
    tokens_per_s: float,
    observer: StreamObserver,
    compression: str | None,
) -> None:
    """Connect, wait for `ready`, send the tokens while reading, `end`, read to the close.

    Bounded by the caller's timeout. Failures are recorded in `observer`, not raised.
    """
    try:
        async with connect(
            stream_url(base_ws, spec), compression=compression, max_size=None, ping_interval=None, open_timeout=30
        ) as ws:
            observer.opened(time.perf_counter())
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                observer.error(f"expected ready, got {ready.get('type')}: {ready.get('code')}")
                return
            receiver = asyncio.create_task(_receive(ws, observer, ready))
            try:

                async def send(token: str) -> None:
                    await ws.send(json.dumps({"type": "text", "text": token}))

                await feed_tokens(passage.tokens, tokens_per_s, send, observer.token_sent)
                await ws.send('{"type":"end"}')
                await receiver
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
            observer.closed(time.perf_counter(), ws.close_code)
    except ConnectionClosed as exc:
        observer.error(f"connection closed: {exc}")
    except (TimeoutError, OSError) as exc:
        observer.error(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one stream's failure is a figure of the run
        observer.error(f"{type(exc).__name__}: {exc}")
