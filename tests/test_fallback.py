"""The fallback chain: a segment whose provider fails before any audio goes to the next one."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np
from websockets.asyncio.client import connect

from stream_server.providers import ProviderError
from stream_server.providers.base import PcmChunk, VoiceInfo, VoiceOptions
from stream_server.providers.tone import ToneProvider

from .conftest import run_server, tone_settings
from .helpers import receive, receive_all, send


class Upstream:
    """A cloud provider stand-in: fails on segments with a trigger word, before or after audio."""

    name = "openai"
    max_chars: int | None = None
    max_bytes: int | None = None
    voices = (VoiceInfo("alloy", 24000, "en"),)

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        if "down" in text:
            raise ProviderError("openai is unavailable (503)", code="provider_unavailable", retryable=True)
        yield PcmChunk(np.full(2400, 0.2, np.float32), 24000)
        if "midway" in text:
            raise ProviderError("openai closed the connection mid-answer", code="provider_unavailable")
        yield PcmChunk(np.full(2400, 0.2, np.float32), 24000)

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {}


async def run(text: str, fallback: tuple[str, ...] = ("tone",)) -> list[dict]:
    settings = tone_settings(providers=("openai", "tone"), provider="openai", fallback=fallback)
    async with run_server(settings, {"openai": Upstream(), "tone": ToneProvider()}) as server:
        async with connect(server.ws_url) as ws:
            await receive(ws)
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            transcript = await receive_all(ws)
    return [m for m in transcript.messages() if m["type"] != "done"]


async def test_a_segment_that_fails_before_audio_goes_to_the_fallback() -> None:
    events = await run("Fine here. The upstream is down now. Fine again.")
    kinds = [(m["type"], m.get("seq")) for m in events]
    assert kinds == [
        ("segment", 0), ("segment_end", 0),
        ("segment", 1), ("segment_end", 1), ("warning", 1),
        ("segment", 2), ("segment_end", 2),
    ]  # fmt: skip
    warning = events[4]
    assert warning["code"] == "provider_fallback"
    assert "unavailable (503)" in warning["message"] and "tone" in warning["message"]
    # tone: 80 ms per word; the upstream stand-in: 200 ms per segment.
    assert 5 * 80 <= events[3]["audio_ms"] < 5 * 80 + 3


async def test_a_failure_after_audio_ends_the_segment_without_fallback() -> None:
    events = await run("It breaks midway through. Fine again.")
    kinds = [(m["type"], m.get("seq")) for m in events]
    assert kinds == [("segment", 0), ("segment_end", 0), ("error", 0), ("segment", 1), ("segment_end", 1)]
    assert events[2]["code"] == "provider_unavailable"
    assert 100 <= events[1]["audio_ms"] < 103  # what came out (plus the resampler flush), nothing twice


async def test_without_a_fallback_the_error_is_the_providers() -> None:
    events = await run("The upstream is down now.", fallback=())
    assert [(m["type"], m.get("code")) for m in events] == [
        ("segment", None), ("segment_end", None), ("error", "provider_unavailable")
    ]
