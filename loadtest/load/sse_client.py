"""One stream over SSE sessions: `POST /v1/tts/sessions`, text by `POST …/text`, events by `GET …/events`.

Tokens are posted one request at a time, in order, with `seq`; tokens produced while a request
is in flight go together in the next one (what a sensible HTTP client does: one request per
token at 40 tokens/s would be most of the traffic). A token's TTFA clock starts when the feeder
produced it, so the wait for an earlier request is counted, as a listener would notice it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec

from .corpus import Passage
from .feeder import feed_tokens
from .observer import StreamObserver
from .spec import StreamSpec

_decode = msgspec.json.Decoder().decode


class _TextPoster:
    """Posts queued text in order: whatever accumulated while the previous request was out."""

    def __init__(self, client: httpx.AsyncClient, text_url: str) -> None:
        self._client = client
        self._url = text_url
        self._pending: list[str] = []  # bounded by the passage's token count
        self._ended = False
        self._wakeup = asyncio.Event()
        self._seq = 0

    def add(self, token: str) -> None:
        self._pending.append(token)
        self._wakeup.set()

    def end(self) -> None:
        self._ended = True
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            text, self._pending = "".join(self._pending), []
            end = self._ended
            if text or end:
                body: dict[str, Any] = {"text": text, "seq": self._seq}
                if end:
                    body["end"] = True
                self._seq += 1
                response = await self._client.post(self._url, json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"POST text answered {response.status_code}: {response.text[:200]}")
            if end and not self._pending:
                return


async def _read_events(client: httpx.AsyncClient, events_url: str, observer: StreamObserver) -> None:
    kind, data = "message", ""
    async with client.stream("GET", events_url) as response:
        if response.status_code != 200:
            observer.error(f"GET events answered {response.status_code}")
            return
        async for line in response.aiter_lines():
            if line:
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                continue  # `id:` and `: keep-alive` comments need nothing
            if data:
                now = time.perf_counter()
                payload = _decode(data)
                if kind == "audio":
                    observer.audio(now, float(payload["ms"]))
                elif kind == "segment":
                    observer.segment(now, str(payload.get("text", "")))
                elif kind == "segment_end":
                    observer.segment_end(now)
                elif kind == "done":
                    observer.finished(now, payload)
                    return
                elif kind in ("error", "warning"):
                    observer.error(f"{kind} {payload.get('code')}: {payload.get('message')}")
            kind, data = "message", ""


async def run_sse_stream(
    client: httpx.AsyncClient,
    spec: StreamSpec,
    passage: Passage,
    tokens_per_s: float,
    observer: StreamObserver,
) -> None:
    """Create a session, read its events while posting the tokens, `end`, read to `done`.

    Bounded by the caller's timeout. Failures are recorded in `observer`, not raised.
    """
    session_url: str | None = None
    try:
        created = await client.post("/v1/tts/sessions", json=spec.config_fields())
        if created.status_code != 201:
            observer.error(f"POST session answered {created.status_code}: {created.text[:200]}")
            return
        session = created.json()
        session_url = f"/v1/tts/sessions/{session['id']}"
        observer.opened(time.perf_counter())
        reader = asyncio.create_task(_read_events(client, session["events_url"], observer))
        poster = _TextPoster(client, session["text_url"])
        posting = asyncio.create_task(poster.run())
        try:

            async def send(token: str) -> None:
                poster.add(token)

            await feed_tokens(passage.tokens, tokens_per_s, send, observer.token_sent)
            poster.end()
            await posting
            await reader
        finally:
            for task in (reader, posting):
                task.cancel()
            await asyncio.gather(reader, posting, return_exceptions=True)
        observer.closed(time.perf_counter(), None)
    except Exception as exc:  # noqa: BLE001 - one stream's failure is a figure of the run
        observer.error(f"{type(exc).__name__}: {exc}")
    finally:
        if session_url is not None and observer.done is None:
            # Abandoned (error or timeout): cancel its synthesis now; the session itself stays
            # until the server's idle expiry (--sse-idle-s).
            try:
                await asyncio.wait_for(client.delete(session_url), timeout=5)
            except Exception:  # noqa: BLE001, S110 - best effort; the server expires it anyway
                pass
