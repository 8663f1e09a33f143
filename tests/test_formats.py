"""Every output format, streamed over the WebSocket and decoded back with PyAV and the ffmpeg command."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator

import av
import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from stream_server.audio.formats import FORMATS
from stream_server.providers import tone

from .conftest import RunningServer, run_server, tone_settings
from .helpers import Transcript, decode_opus, receive, receive_all, rms, send

TEXT = "One two three four five. Six seven eight nine."
TONE_MS = sum(tone.expected_duration_ms(s) for s in ("One two three four five.", "Six seven eight nine."))

# FFmpeg's raw demuxers for the formats that have no header; the others are probed.
RAW_DEMUXERS = {"pcm": "s16le", "f32": "f32le", "mulaw": "mulaw", "alaw": "alaw"}
CONTAINERS = ["ogg_opus", "webm_opus", "aac", "flac", "wav", "mp3"]
# Frame padding and codec priming add a little; MP3 and AAC also add up to their encoder delay
# (about 250 ms) of silence at each of the two segment ends, which these tests give no pause to hide in.
SLACK_MS = {"mp3": 2 * 250, "aac": 2 * 250}


def require_ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the ffmpeg command is required in CI (.ci/run installs Debian's ffmpeg)")
        pytest.skip("the ffmpeg command is not installed (apt-get install ffmpeg)")
    return path


def decode_with_pyav(data: bytes, fmt: str, rate: int) -> tuple[np.ndarray, int]:
    if fmt == "opus":
        raise AssertionError("raw Opus packets are decoded packet by packet")
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if fmt in RAW_DEMUXERS else {}
    with av.open(io.BytesIO(data), format=RAW_DEMUXERS.get(fmt), options=options) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate or rate)
        samples = [
            out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
        ]
        return (np.concatenate(samples) if samples else np.zeros(0, np.float32)), stream.rate or rate


def decode_with_ffmpeg(data: bytes, fmt: str, rate: int) -> tuple[np.ndarray, str]:
    command = [require_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    if fmt in RAW_DEMUXERS:
        command += ["-f", RAW_DEMUXERS[fmt], "-ar", str(rate), "-ac", "1"]
    command += ["-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(rate), "pipe:1"]
    result = subprocess.run(command, input=data, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return np.frombuffer(result.stdout, dtype="<f4"), result.stderr.decode()


async def stream_text(server: RunningServer, query: str, text: str = TEXT) -> tuple[dict, Transcript]:
    async with connect(f"{server.ws_url}?{query}") as ws:
        ready = await receive(ws)
        assert ready["type"] == "ready", ready
        await send(ws, type="text", text=text)
        await send(ws, type="end")
        transcript = await receive_all(ws)
    assert ws.close_code == 1000
    return ready, transcript


@pytest.fixture(scope="module")
async def format_server(tone_provider) -> AsyncIterator[RunningServer]:
    async with run_server(tone_settings(), {"tone": tone_provider}) as server:
        yield server


@pytest.fixture(scope="module")
async def streamed(format_server: RunningServer) -> dict[str, tuple[dict, Transcript]]:
    """Each format streamed once (at 16 kHz where offered, to go through the resampler)."""
    out = {}
    for name, fmt in FORMATS.items():
        rate = 16000 if 16000 in fmt.sample_rates else fmt.sample_rates[0]
        out[name] = await stream_text(format_server, f"format={name}&sample_rate={rate}")
    return out


async def test_the_server_lists_its_formats(format_server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        listed = (await client.get(f"{format_server.http_url}/v1/formats")).json()["formats"]
        voices = (await client.get(f"{format_server.http_url}/v1/voices")).json()
    assert [f["name"] for f in listed] == list(FORMATS)
    mulaw = next(f for f in listed if f["name"] == "mulaw")
    assert mulaw["sample_rates"] == [8000] and mulaw["container"] is None
    assert voices["providers"]["tone"][0] == {
        "id": "beep", "name": "beep", "language": "en", "gender": None, "sample_rate": 24000,
        "decoding": None,
    }


@pytest.mark.parametrize("name", list(FORMATS))
async def test_each_format_decodes_to_the_right_rate_and_duration(streamed, name: str) -> None:
    ready, transcript = streamed[name]
    rate = ready["sample_rate"]
    data = b"".join(transcript.frames())
    if name == "opus":
        samples, lengths = decode_opus(transcript.frames())
        assert set(lengths) == {960}
        decoded_rate = 48000
    else:
        samples, decoded_rate = decode_with_pyav(data, name, rate)
    assert decoded_rate == rate
    duration_ms = len(samples) / rate * 1000
    slack = SLACK_MS.get(name, 90)
    assert TONE_MS <= duration_ms + 2 <= TONE_MS + slack, duration_ms
    assert rms(samples) > 0.05
    done = transcript.messages("done")[0]
    assert done["segments"] == 2


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "opus"])
async def test_each_format_decodes_with_the_ffmpeg_command(streamed, name: str) -> None:
    ready, transcript = streamed[name]
    rate = ready["sample_rate"]
    samples, errors = decode_with_ffmpeg(b"".join(transcript.frames()), name, rate)
    assert not errors.strip(), errors
    duration_ms = len(samples) / rate * 1000
    slack = SLACK_MS.get(name, 90)
    assert TONE_MS <= duration_ms + 2 <= TONE_MS + slack, duration_ms
    assert rms(samples) > 0.05


@pytest.mark.parametrize("name", CONTAINERS)
async def test_containers_decode_when_the_client_stops_reading_mid_stream(streamed, name: str) -> None:
    ready, transcript = streamed[name]
    rate = ready["sample_rate"]
    chunks = transcript.frames()
    full, _ = decode_with_pyav(b"".join(chunks), name, rate)
    previous = 0
    for cut in sorted({len(chunks) // 4, len(chunks) // 2, 3 * len(chunks) // 4, len(chunks) - 1}):
        truncated = b"".join(chunks[:cut])
        samples, _ = decode_with_pyav(truncated, name, rate)
        by_ffmpeg, errors = decode_with_ffmpeg(truncated, name, rate)
        assert not errors.strip(), f"{name} cut after {cut} chunks: {errors}"
        assert previous < len(samples) <= len(full)
        assert abs(len(by_ffmpeg) - len(samples)) <= rate // 10
        previous = len(samples)


def test_container_chunks_start_on_page_cluster_and_frame_boundaries(streamed) -> None:
    def chunks(name: str) -> list[bytes]:
        return streamed[name][1].frames()

    ogg = chunks("ogg_opus")
    assert all(c.startswith(b"OggS") for c in ogg)
    webm = chunks("webm_opus")
    assert webm[0].startswith(bytes.fromhex("1A45DFA3"))  # EBML header, then the tracks
    assert all(c.startswith(bytes.fromhex("1F43B675")) for c in webm[1:])  # one cluster each
    assert all(c[0] == 0xFF and c[1] & 0xF0 == 0xF0 for c in chunks("aac"))  # ADTS sync
    assert all(c[0] == 0xFF and c[1] & 0xE0 == 0xE0 for c in chunks("mp3"))  # MPEG audio sync
    flac = chunks("flac")
    assert flac[0].startswith(b"fLaC")
    assert all(c[0] == 0xFF and c[1] & 0xFE == 0xF8 for c in flac[1:])


def test_wav_has_one_streaming_header(streamed) -> None:
    data = b"".join(streamed["wav"][1].frames())
    assert data.count(b"RIFF") == 1 and data.startswith(b"RIFF")
    assert struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF  # size unknown while streaming
    data_at = data.index(b"data")
    assert data_at == 36 and struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF


def test_telephony_formats_have_no_header(streamed) -> None:
    for name in ("mulaw", "alaw"):
        ready, transcript = streamed[name]
        assert ready["sample_rate"] == 8000
        frames = transcript.frames()
        by_segment = transcript.frames_by_segment()
        # One byte per sample: every frame but a segment's last is exactly 20 ms.
        for frames_of_segment in by_segment.values():
            assert all(len(f) == 160 for f in frames_of_segment[:-1])
        assert b"RIFF" not in b"".join(frames)


async def test_telephony_formats_only_at_8000_hz(format_server: RunningServer) -> None:
    async with connect(f"{format_server.ws_url}?format=mulaw&sample_rate=16000") as ws:
        error = await receive(ws)
    assert error["code"] == "unsupported_sample_rate"
