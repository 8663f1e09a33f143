"""The embedded Piper voice end to end: real model, real server, audio decoded and checked."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from stream_server.providers.piper import PiperProvider, default_model_path

from .conftest import RunningServer, run_server, tone_settings
from .helpers import (
    assert_speech_like,
    decode_opus,
    pcm_samples,
    receive,
    receive_all,
    receive_until,
    send,
    wait_for,
)
from .test_ws_lifecycle import stream_tasks

TEXT = "The weather is lovely today. Shall we take a walk by the river after lunch?"


@pytest.fixture
async def piper_server(piper_provider, tone_provider) -> AsyncIterator[RunningServer]:
    settings = tone_settings(providers=("piper", "tone"), provider="piper")
    async with run_server(settings, {"piper": piper_provider, "tone": tone_provider}) as server:
        yield server


async def stream_words(ws, text: str) -> None:
    for word in text.split(" "):
        await send(ws, type="text", text=word + " ")


async def test_piper_streams_speech_sentence_by_sentence(piper_server: RunningServer) -> None:
    async with connect(piper_server.ws_url) as ws:
        ready = await receive(ws)
        assert (ready["provider"], ready["voice"], ready["sample_rate"]) == ("piper", "en_US-joe-medium", 22050)
        await stream_words(ws, TEXT)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    segments = transcript.messages("segment")
    assert [s["text"] for s in segments] == [
        "The weather is lovely today.",
        "Shall we take a walk by the river after lunch?",
    ]
    by_segment = transcript.frames_by_segment()
    for segment in segments:
        frames = by_segment[segment["seq"]]
        assert all(len(f) == 441 * 2 for f in frames[:-1])
        assert_speech_like(pcm_samples(frames), 22050, segment["text"])
    done = transcript.messages("done")[0]
    assert done["segments"] == 2 and done["ttfa_ms"] > 0


async def test_piper_over_opus_decodes_to_speech(piper_server: RunningServer) -> None:
    async with connect(f"{piper_server.ws_url}?format=opus") as ws:
        await receive(ws)
        await send(ws, type="text", text="Opus carries this sentence to the browser.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    audio, lengths = decode_opus(transcript.frames())
    assert set(lengths) == {960}
    assert_speech_like(audio, 48000, "Opus carries this sentence to the browser.")


async def test_piper_speed_maps_to_length_scale(piper_server: RunningServer) -> None:
    async def duration(speed: float) -> float:
        async with connect(f"{piper_server.ws_url}?speed={speed}") as ws:
            await receive(ws)
            await send(ws, type="text", text="Counting one two three four five six seven eight.")
            await send(ws, type="end")
            return (await receive_all(ws)).messages("done")[0]["audio_ms"]

    normal, fast, slow = await duration(1.0), await duration(2.0), await duration(0.5)
    # Phoneme durations scale with 1/speed; the model's pauses and VITS' noise do not, exactly.
    assert 0.45 < fast / normal < 0.7
    assert 1.6 < slow / normal < 2.2


async def test_disconnect_during_inference_leaves_no_job_behind(piper_server: RunningServer, piper_provider) -> None:
    async with connect(piper_server.ws_url, close_timeout=0.5) as ws:
        await receive(ws)
        # Lookahead: two segments in synthesis, so a job waits behind the running one.
        await send(ws, type="text", text=TEXT * 5)
        await send(ws, type="flush")
        session = next(iter(piper_server.state.streams))
        await wait_for(lambda: piper_provider.stats()["jobs_in_flight"] > 0)
        stream_id = session.id
        ws.transport.abort()
    await wait_for(lambda: not piper_server.state.streams)
    await wait_for(lambda: not stream_tasks(stream_id))
    started = piper_provider.stats()["jobs_started"]
    # A running inference cannot be interrupted, but it ends and nothing queued behind it runs.
    await wait_for(lambda: piper_provider.stats()["jobs_in_flight"] == 0)
    assert piper_provider.stats()["jobs_started"] == started, "a job of the closed stream started"
    assert (await piper_server.health())["providers"]["piper"]["jobs_in_flight"] == 0


async def test_cancel_during_piper_synthesis_sends_no_stale_audio(piper_server: RunningServer) -> None:
    async with connect(piper_server.ws_url) as ws:
        await receive(ws)
        await stream_words(ws, TEXT * 3)
        before = await receive_until(ws, "segment")
        await send(ws, type="cancel")
        await receive_until(ws, "cancelled", before)
        old_seqs = {m["seq"] for m in before.messages("segment")}
        await send(ws, type="text", text="Fresh words now.")
        await send(ws, type="end")
        after = await receive_all(ws)
    segments = after.messages("segment")
    assert [s["text"] for s in segments] == ["Fresh words now."]
    assert segments[0]["seq"] > max(old_seqs)
    assert after.items[0] == segments[0], "no audio may precede the new segment"
    assert_speech_like(pcm_samples(after.frames()), 22050, "Fresh words now.")


async def test_a_further_piper_voice_from_a_model_file(tmp_path: Path, tone_provider) -> None:
    model = default_model_path()
    extra = tmp_path / "en_US-second-medium.onnx"
    shutil.copyfile(model, extra)
    shutil.copyfile(f"{model}.json", f"{extra}.json")
    provider = PiperProvider([model, extra])
    try:
        assert [v.id for v in provider.voices] == ["en_US-joe-medium", "en_US-second-medium"]
        settings = tone_settings(providers=("piper", "tone"), provider="piper")
        async with run_server(settings, {"piper": provider, "tone": tone_provider}) as server:
            async with connect(f"{server.ws_url}?voice=en_US-second-medium") as ws:
                assert (await receive(ws))["voice"] == "en_US-second-medium"
                await send(ws, type="text", text="A second voice speaks.")
                await send(ws, type="end")
                transcript = await receive_all(ws)
        samples = pcm_samples(transcript.frames())
        assert_speech_like(samples, 22050, "A second voice speaks.")
        assert np.isfinite(samples).all()
    finally:
        await provider.aclose()


def test_a_missing_model_fails_at_start_up_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.onnx"
    with pytest.raises(FileNotFoundError, match="nobody.onnx"):
        PiperProvider([missing])


async def test_double_brackets_are_read_as_text_not_phonemes(piper_server: RunningServer) -> None:
    async with connect(piper_server.ws_url) as ws:
        await receive(ws)
        await send(ws, type="text", text="Say [[hello]] to the world.")
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert not transcript.messages("error")
    assert_speech_like(pcm_samples(transcript.frames()), 22050, "Say hello to the world.")


def test_two_voices_with_one_name_are_refused(tmp_path: Path) -> None:
    model = default_model_path()
    twin = tmp_path / model.name
    shutil.copyfile(model, twin)
    shutil.copyfile(f"{model}.json", f"{twin}.json")
    with pytest.raises(ValueError, match="en_US-joe-medium"):
        PiperProvider([model, twin])
