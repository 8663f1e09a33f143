"""A fair share of the local voice between API keys, and bounded memory per inference, end to end.

Fairness: real model, real server with two keys, real WebSocket clients. Alice's first stream
holds the one inference worker while her other streams queue their work; then bob sends one
sentence. The order in which Piper starts each segment is recorded, so the test checks the
scheduling order, never a duration.

Memory: a real server process; one 300-character message whose audio would be minutes long, at the
slowest allowed speed; the process's peak RSS growth is read from /proc around it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import RunningServer, run_server, tone_settings
from .helpers import assert_speech_like, pcm_samples, receive, receive_all, send, wait_for
from .piper_jobs import JobLog
from .processes import server_process

ALICE_KEY, BOB_KEY = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"
HOLD = "Alice holds the only worker for a while."
ALICE = [f"Alice's stream number {n} reads a sentence, and then another one." for n in range(6)]
BOB = "Bob asks one short question?"
TIMEOUT_S = 60.0


@pytest.fixture
async def keyed_piper_server(piper_provider, tone_provider) -> AsyncIterator[RunningServer]:
    settings = tone_settings(
        providers=("piper", "tone"), provider="piper", lookahead_segments=1, api_keys=(ALICE_KEY, BOB_KEY)
    )
    async with run_server(settings, {"piper": piper_provider, "tone": tone_provider}) as server:
        yield server


async def test_bobs_sentence_goes_before_alices_queued_streams(
    keyed_piper_server: RunningServer, piper_provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = JobLog(monkeypatch, HOLD, TIMEOUT_S)

    def jobs_in_flight() -> int:
        return piper_provider.stats()["jobs_in_flight"]

    await wait_for(lambda: jobs_in_flight() == 0)
    async with AsyncExitStack() as stack:

        async def start_stream(key: str, text: str) -> ClientConnection:
            headers = {"Authorization": f"Bearer {key}"}
            ws = await stack.enter_async_context(connect(keyed_piper_server.ws_url, additional_headers=headers))
            await receive(ws)
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            return ws

        try:
            hold = await start_stream(ALICE_KEY, HOLD)
            await wait_for(lambda: log.started == [HOLD])
            alice = [await start_stream(ALICE_KEY, text) for text in ALICE]
            await wait_for(lambda: jobs_in_flight() == 1 + len(ALICE))
            bob = await start_stream(BOB_KEY, BOB)
            await wait_for(lambda: jobs_in_flight() == 2 + len(ALICE))
        finally:
            log.release.set()
        transcripts = await asyncio.wait_for(
            asyncio.gather(*(receive_all(ws) for ws in (hold, *alice, bob))), TIMEOUT_S
        )

    # Waiting order would put bob's sentence after all six of alice's: it comes next instead.
    assert log.started[:2] == [HOLD, BOB]
    assert sorted(log.started[2:]) == sorted(ALICE)
    for transcript, text in zip(transcripts, [HOLD, *ALICE, BOB], strict=True):
        assert not transcript.messages("error")
        assert " ".join(s["text"] for s in transcript.messages("segment")) == text
        assert_speech_like(pcm_samples(transcript.frames()), 22050, text)
    await wait_for(lambda: jobs_in_flight() == 0)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_300_character_message_at_a_quarter_speed_stays_under_300_mb() -> None:
    text = "中" * 299 + "。"
    async with server_process("--providers", "piper", "--provider", "piper") as server:
        pid = server.process.pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the high-water mark starts from now
        before = rss_kib(pid, "VmRSS")
        async with connect(f"{server.ws_url}?speed=0.25&format=pcm&sample_rate=22050", max_size=None) as ws:
            await receive(ws)
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            transcript = await asyncio.wait_for(receive_all(ws), 300)
        grown_mb = (rss_kib(pid, "VmHWM") - before) / 1024
    assert not transcript.messages("error")
    assert grown_mb < 300, f"peak RSS grew {grown_mb:.0f} MB"
    audio = pcm_samples(transcript.frames())
    # 299 words "Chinese letter" at a quarter speed: minutes of audio (about 6 min measured).
    assert 200 < len(audio) / 22050 < 600
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 0.02
