"""Backpressure and clean-up: a stalled client costs bounded memory; a gone client leaves nothing."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from stream_server.text import split_sentences

from .conftest import RunningServer, run_server, tone_settings
from .helpers import (
    Transcript,
    dominant_frequency,
    pcm_samples,
    receive,
    receive_all,
    receive_until,
    send,
    wait_for,
)

STREAM_TASK_PREFIXES = ("produce-", "synthesis-", "synth-", "deadlines-", "receive-")


def stream_tasks(stream_id: str) -> list[asyncio.Task]:
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith(STREAM_TASK_PREFIXES) and stream_id in t.get_name() and not t.done()
    ]


async def test_a_client_that_never_reads_holds_the_stream_to_the_ring_capacity(tone_provider) -> None:
    ring_ms = 2000
    settings = tone_settings(ring_ms=ring_ms)
    sentences = [f"Item {i} is right here." for i in range(2000)]  # 2000 × 400 ms = 800 s of audio
    async with run_server(settings, {"tone": tone_provider}) as server:
        async with connect(f"{server.ws_url}?sample_rate=48000", max_queue=1) as ws:
            await receive(ws)
            await send(ws, type="text", text=" ".join(sentences))
            session = next(iter(server.state.streams))
            # Socket buffers fill, then the ring; then synthesis has to wait for the client.
            await wait_for(lambda: session.backpressured)
            produced = session.stats.segments_synthesized
            for _ in range(200):
                await asyncio.sleep(0)  # give a leaking producer every chance to run on
            assert session.backpressured
            assert session.stats.segments_synthesized == produced, "synthesis went on while the client read nothing"
            assert session.core.buffered_ms <= ring_ms
            # What was synthesized fits in the ring plus the kernel's socket buffers: a small
            # part of the 800 s asked for, and the rest is still only text.
            assert produced < len(sentences) // 4
            assert session.pending_chars > 0

            # A barge-in still gets through to a stalled stream, and frees what it held.
            await send(ws, type="cancel")
            await receive_until(ws, "cancelled")
            assert session.core.buffered_ms == 0 and session.pending_chars == 0
            await send(ws, type="text", text="Back again.")
            await send(ws, type="end")
            transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == ["Back again."]


async def test_slow_reader_receives_everything_in_order(tone_provider) -> None:
    settings = tone_settings(ring_ms=200)
    text = " ".join(f"Item {i} is here." for i in range(40))
    async with run_server(settings, {"tone": tone_provider}) as server, connect(server.ws_url, max_queue=1) as ws:
        await receive(ws)
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert [s["text"] for s in transcript.messages("segment")] == split_sentences(text)


@pytest.mark.parametrize("how", ["abort", "close"])
async def test_disconnect_mid_stream_leaves_no_task_or_buffer(tone_server: RunningServer, how: str) -> None:
    # close_timeout: this client stopped reading, so it would wait long for the server's close frame.
    async with connect(tone_server.ws_url, max_queue=1, close_timeout=0.5) as ws:
        await receive(ws)
        await send(ws, type="text", text=" ".join(["A long stream of words."] * 500))
        await receive_until(ws, "segment")
        session = next(iter(tone_server.state.streams))
        stream_id = session.id
        assert stream_tasks(stream_id), "the stream should be busy when the client leaves"
        if how == "abort":
            ws.transport.abort()  # no closing handshake: the TCP connection just drops
        else:
            await ws.close()
    await wait_for(lambda: not tone_server.state.streams)
    await wait_for(lambda: not stream_tasks(stream_id))
    assert session.core.buffered_ms == 0 and session.core.buffered_items == 0
    assert session.pending_chars == 0
    health = await tone_server.health()
    assert health["streams"] == 0


async def test_many_streams_at_once_do_not_mix(tone_server: RunningServer) -> None:
    async def one(voice: str, n: int) -> Transcript:
        async with connect(f"{tone_server.ws_url}?voice={voice}") as ws:
            await receive(ws)
            text = " ".join(f"Stream {voice} sentence {i}." for i in range(n))
            await send(ws, type="text", text=text)
            await send(ws, type="end")
            return await receive_all(ws)

    plan = [("beep", 5), ("low", 9), ("beep", 3), ("low", 1)]
    results = await asyncio.gather(*(one(v, n) for v, n in plan))
    for (voice, n), transcript in zip(plan, results):
        texts = [s["text"] for s in transcript.messages("segment")]
        assert texts == [f"Stream {voice} sentence {i}." for i in range(n)]
        # Every beep of the stream is in its own voice's octave: no frame came from another.
        samples = pcm_samples(transcript.frames())
        low, high = (440, 880) if voice == "beep" else (220, 440)
        for word in range(len(samples) // 1920):
            beep = samples[word * 1920 : word * 1920 + 1440]
            assert low * 0.97 <= dominant_frequency(beep, 24000) < high * 1.03


@pytest.mark.parametrize("fmt", ["opus", "pcm&sample_rate=16000", "ogg_opus"])
async def test_a_closed_stream_frees_its_codec_threads_without_waiting_for_the_garbage_collector(
    tone_server: RunningServer, fmt: str
) -> None:
    """FFmpeg starts native threads for a stream's resamplers; a reference cycle kept them alive
    until a full collection (976 threads after 1000 streams under load)."""
    import gc

    async def one_stream() -> None:
        async with connect(f"{tone_server.ws_url}?format={fmt}") as ws:
            await receive(ws)
            await send(ws, type="text", text="Hello there. How are you today?")
            await send(ws, type="end")
            await receive_all(ws)
        await wait_for(lambda: not tone_server.state.streams)

    # Concurrent streams first: the encode pool starts its threads lazily, up to one per core.
    await asyncio.gather(*(one_stream() for _ in range(4)))
    gc.collect()
    gc.disable()
    try:
        baseline = (await tone_server.health())["threads"]
        for _ in range(10):
            await one_stream()
        assert (await tone_server.health())["threads"] == baseline
    finally:
        gc.enable()


async def test_audio_frames_are_not_deflated(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url, compression="deflate") as ws:  # offered, as browsers do
        assert (await receive(ws))["type"] == "ready"
        assert ws.protocol.extensions == []
