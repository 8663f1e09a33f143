"""The Python client (clients/python) and its `say` CLI against real servers on loopback ports.

The CLI runs as a real subprocess while the server keeps serving in this test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from clients.python import (
    AudioChunk,
    Cancelled,
    ConnectFailed,
    Done,
    Error,
    Event,
    SegmentEnd,
    SegmentStart,
    ServerError,
    Unauthorized,
    connect,
    synthesize,
    synthesize_sync,
)
from stream_server.audio.pipeline import resampler_flush_samples
from stream_server.providers import Provider, tone
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import assert_speech_like, pcm_samples, rms
from .test_formats import require_ffmpeg

REPO = Path(__file__).resolve().parent.parent
TONE_RATE = 24000
PCM_BYTES_PER_MS = TONE_RATE * 2 // 1000


def tone_ms(text: str, speed: float = 1.0) -> float:
    """A tone segment's audio: 80 ms a word (tone_settings() adds no pauses), plus the silence that
    flushes the resampler at the segment's end."""
    return tone.expected_duration_ms(text, speed) + 1000 * resampler_flush_samples(TONE_RATE, TONE_RATE) / TONE_RATE


def tone_bytes(*segments: str) -> int:
    return sum(round(tone_ms(text) * PCM_BYTES_PER_MS) for text in segments)


async def collect(stream: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in stream]


def audio_by_segment(events: list[Event]) -> dict[int | None, bytes]:
    audio: dict[int | None, bytes] = {}
    for event in events:
        if isinstance(event, AudioChunk):
            audio[event.seq] = audio.get(event.seq, b"") + event.data
    return audio


# -- the async API ----------------------------------------------------------------------------


async def test_events_arrive_in_order_with_audio_tagged_by_segment(tone_server: RunningServer) -> None:
    async with connect(tone_server.ws_url, voice="low") as stream:
        assert stream.ready is not None
        assert (stream.ready.provider, stream.ready.voice, stream.ready.sample_rate) == ("tone", "low", TONE_RATE)
        receiving = asyncio.create_task(collect(stream))
        for chunk in ["One two", " three. Four", " five. Six"]:
            await stream.send_text(chunk)
        await stream.end()
        events = await asyncio.wait_for(receiving, 10)

    kinds = [(type(e).__name__, getattr(e, "seq", None)) for e in events if not isinstance(e, AudioChunk)]
    assert kinds == [
        ("SegmentStart", 0), ("SegmentEnd", 0),
        ("SegmentStart", 1), ("SegmentEnd", 1),
        ("SegmentStart", 2), ("SegmentEnd", 2),
        ("Done", None),
    ]  # fmt: skip
    starts = [e for e in events if isinstance(e, SegmentStart)]
    ends = {e.seq: e for e in events if isinstance(e, SegmentEnd)}
    assert [s.text for s in starts] == ["One two three.", "Four five.", "Six"]
    # Every frame carries the segment it came in, and a segment's frames add up to its audio_ms.
    audio = audio_by_segment(events)
    assert set(audio) == {0, 1, 2}
    for start in starts:
        assert ends[start.seq].audio_ms == pytest.approx(tone_ms(start.text), abs=0.01)
        assert len(audio[start.seq]) == round(ends[start.seq].audio_ms * PCM_BYTES_PER_MS)
    done = events[-1]
    assert isinstance(done, Done) and stream.done is done
    expected_ms = sum(tone_ms(s.text) for s in starts)
    assert (done.segments, done.audio_ms, done.text_chars) == (3, pytest.approx(expected_ms, abs=0.01), 29)
    # Client-side timings: in receiving order, and each segment's text was sent before it started.
    received = [e.received_at for e in events]
    assert received == sorted(received)
    for start in starts:
        assert start.text_sent_at is not None and start.text_sent_at <= start.received_at


async def test_cancel_mid_stream_drops_old_audio_and_the_stream_goes_on(tone_server: RunningServer) -> None:
    sentences = "".join(f"This is sentence number {n}. " for n in range(40))  # 16 s of beeps
    # Paced, so the old audio is still coming (some of it in flight) when the cancel goes out.
    async with connect(tone_server.ws_url, max_lead_ms=300) as stream:
        await stream.send_text(sentences)
        before: list[Event] = []
        async for event in stream:
            before.append(event)
            if isinstance(event, AudioChunk):
                break
        await stream.cancel()
        await stream.send_text("Sure, go ahead.")
        await stream.end()
        after = await asyncio.wait_for(collect(stream), 10)

    first_seq = next(e.seq for e in before if isinstance(e, SegmentStart))
    assert isinstance(after[0], Cancelled), f"old output after the cancel: {[type(e).__name__ for e in after[:3]]}"
    starts = [e for e in after if isinstance(e, SegmentStart)]
    assert [s.text for s in starts] == ["Sure, go ahead."]
    assert starts[0].seq > first_seq
    assert set(audio_by_segment(after)) == {starts[0].seq}
    assert len(audio_by_segment(after)[starts[0].seq]) == tone_bytes("Sure, go ahead.")
    done = after[-1]
    assert isinstance(done, Done)
    assert done.audio_ms < 2000  # the 40 sentences were dropped, not played out


async def test_synthesize_streams_chunks_and_collects_audio_and_timings(tone_server: RunningServer) -> None:
    async def llm_tokens() -> AsyncIterator[str]:
        for token in ["Hello ", "there. ", "How are ", "you today?"]:
            yield token

    result = await synthesize(llm_tokens(), url=tone_server.ws_url, voice="low")

    assert result.sample_rate == TONE_RATE and result.ready.format == "pcm"
    assert [s.text for s in result.segments] == ["Hello there.", "How are you today?"]
    assert [s.audio_ms for s in result.segments] == [pytest.approx(tone_ms(s.text), abs=0.01) for s in result.segments]
    assert result.audio_ms == pytest.approx(tone_ms("Hello there.") + tone_ms("How are you today?"), abs=0.01)
    assert len(result.audio) == round(result.audio_ms * PCM_BYTES_PER_MS)
    assert rms(pcm_samples([result.audio])) > 0.05
    assert result.ttfa_ms is not None and 0 < result.ttfa_ms < 5000
    assert result.done.ttfa_ms is not None and result.done.ttfa_ms <= result.ttfa_ms
    for segment in result.segments:
        assert segment.latency_ms is not None and 0 <= segment.latency_ms < 5000


async def test_synthesize_sync_takes_a_plain_generator(tone_server: RunningServer) -> None:
    def tokens() -> Any:
        yield from ["One two. ", "Three."]

    # A script has no event loop; this test's loop runs the server, so the script runs in a thread.
    result = await asyncio.to_thread(synthesize_sync, tokens(), url=tone_server.ws_url, speed=2.0)

    assert result.ready.speed == 2.0
    assert [s.text for s in result.segments] == ["One two.", "Three."]
    assert result.audio_ms == pytest.approx(tone_ms("One two.", 2.0) + tone_ms("Three.", 2.0), abs=0.01)
    assert len(result.audio) == round(result.audio_ms * PCM_BYTES_PER_MS)


async def test_server_errors_surface_with_their_code(tone_provider: ToneProvider) -> None:
    async with run_server(tone_settings(max_pending_chars=100), {"tone": tone_provider}) as server:
        # A setting the server refuses, at connect.
        with pytest.raises(ServerError) as refused:
            async with connect(server.ws_url, voice="nope"):
                pass
        assert refused.value.code == "unknown_voice"

        # An error in the middle of a stream ends synthesize().
        with pytest.raises(ServerError) as too_much:
            await synthesize("word " * 60, url=server.ws_url)
        assert too_much.value.code == "pending_text_limit"

        # The event API hands errors over as events; the connection goes on.
        async with connect(server.ws_url) as stream:
            await stream.send_text("One.")
            await stream.end()
            await stream.send_text("too late")
            events = await asyncio.wait_for(collect(stream), 10)
        errors = [e for e in events if isinstance(e, Error)]
        assert [e.code for e in errors] == ["stream_ended"]
        assert isinstance(events[-1], Done) and events[-1].segments == 1


async def test_piper_speech_through_synthesize(piper_provider: Provider) -> None:
    settings = tone_settings(providers=("piper",), provider="piper")
    text = "Hello there. This client streams text in and speech out."
    async with run_server(settings, {"piper": piper_provider}) as server:
        result = await synthesize(text, url=server.ws_url)
    assert result.ready.provider == "piper" and result.sample_rate == 22050
    assert [s.text for s in result.segments] == ["Hello there.", "This client streams text in and speech out."]
    assert len(result.audio) == pytest.approx(result.audio_ms * result.sample_rate / 1000 * 2, abs=4)
    assert_speech_like(pcm_samples([result.audio]), result.sample_rate, text)


# -- auth: a stand-in server, until the real one checks keys (issue 9) --------------------------

GOOD_KEY = "sk-client-test-key-0123456789"


@asynccontextmanager
async def keyed_server(tone_provider: ToneProvider) -> AsyncIterator[RunningServer]:
    async with run_server(tone_settings(api_keys=(GOOD_KEY,)), {"tone": tone_provider}) as server:
        yield server


async def test_api_key_and_browser_token_open_streams_and_a_bad_key_is_unauthorized(
    tone_provider: ToneProvider,
) -> None:
    async with keyed_server(tone_provider) as server:
        async with connect(server.ws_url, api_key=GOOD_KEY) as stream:
            assert stream.ready is not None
        async with httpx.AsyncClient() as http:
            minted = await http.post(f"{server.http_url}/v1/tokens", headers={"Authorization": f"Bearer {GOOD_KEY}"})
        token = minted.json()["token"]
        result = await synthesize("Hello there.", url=server.ws_url, token=token, voice="beep")
        assert result.done is not None and result.done.audio_ms > 0
        with pytest.raises(Unauthorized) as reused:
            async with connect(server.ws_url, token=token):  # single use
                pass
        with pytest.raises(Unauthorized) as rejected:
            async with connect(server.ws_url, api_key="wrong-key"):
                pass
    assert reused.value.status == rejected.value.status == 401
    assert rejected.value.detail == "unknown API key" and "wrong-key" not in str(rejected.value)
    assert isinstance(rejected.value, ConnectFailed)


# -- the CLI ----------------------------------------------------------------------------------


@dataclass
class SayRun:
    code: int
    stdout: bytes
    stderr: str


def say_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STREAM_SERVER_API_KEY"}
    return env | extra


async def start_say(*args: str, env: dict[str, str] | None = None, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.python.say", *args,
        cwd=REPO, env=env or say_env(),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def say(*args: str, env: dict[str, str] | None = None) -> SayRun:
    process = await start_say(*args, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return SayRun(process.returncode, stdout, stderr.decode())


def decode_file(path: Path) -> tuple[str, int, np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return stream.codec_context.name, stream.rate, np.concatenate(frames)


@pytest.mark.parametrize(
    ("suffix", "codec", "rate"),
    [(".wav", "pcm_s16le", TONE_RATE), (".ogg", "opus", 48000), (".mp3", "mp3float", TONE_RATE)],
)
async def test_cli_writes_audio_files(
    tone_server: RunningServer, tmp_path: Path, suffix: str, codec: str, rate: int
) -> None:
    out = tmp_path / f"speech{suffix}"
    run = await say("One two three. Four five.", "--url", tone_server.ws_url, "--out", str(out))

    assert (run.code, run.stderr, run.stdout) == (0, "", b"")
    decoded_codec, decoded_rate, samples = decode_file(out)
    assert (decoded_codec, decoded_rate) == (codec, rate)
    # Five 80 ms words; lossy codecs add a little padding.
    expected_s = (tone_ms("One two three.") + tone_ms("Four five.")) / 1000
    assert expected_s - 0.005 <= len(samples) / rate <= expected_s + 0.1
    assert rms(samples.astype(np.float32) / (32768 if samples.dtype == np.int16 else 1)) > 0.05


def probe(path: Path) -> tuple[str, str, float]:
    """What the ffprobe command finds in a file: its container, its audio codec and duration (s)."""
    command = [require_ffmpeg().replace("ffmpeg", "ffprobe"), "-v", "error", "-print_format", "json",
               "-show_format", "-show_streams", str(path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
    info = json.loads(result.stdout)
    (stream,) = info["streams"]
    # A live stream's container may carry no duration: decode it to the end instead.
    decoded = subprocess.run([require_ffmpeg(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar",
                              "8000", "pipe:1"], capture_output=True, timeout=30, check=True)  # fmt: skip
    return info["format"]["format_name"], stream["codec_name"], len(decoded.stdout) / 4 / 8000


@pytest.mark.parametrize(
    ("audio_format", "suffix", "container", "codec"),
    [
        ("opus", ".opus", "ogg", "opus"),  # raw packets are not a file: the server's Ogg Opus instead
        ("opus", ".ogg", "ogg", "opus"),
        ("opus", ".webm", "matroska,webm", "opus"),
        ("ogg_opus", ".opus", "ogg", "opus"),
        ("mp3", ".mp3", "mp3", "mp3"),
        ("flac", ".flac", "flac", "flac"),
    ],
)
async def test_cli_file_output_is_always_a_playable_container(
    tone_server: RunningServer, tmp_path: Path, audio_format: str, suffix: str, container: str, codec: str
) -> None:
    out = tmp_path / f"speech{suffix}"
    run = await say("One two three. Four five.", "--url", tone_server.ws_url, "--format", audio_format,
                    "--out", str(out))  # fmt: skip
    assert (run.code, run.stderr) == (0, "")
    found_container, found_codec, seconds = probe(out)
    assert (found_container, found_codec) == (container, codec)
    expected_s = (tone_ms("One two three.") + tone_ms("Four five.")) / 1000
    assert expected_s - 0.01 <= seconds <= expected_s + 0.6  # MP3's encoder delay at each segment's ends


async def test_cli_raw_packets_only_to_a_raw_file_and_no_container_mismatch(
    tone_server: RunningServer, tmp_path: Path
) -> None:
    raw = tmp_path / "speech.raw"
    run = await say("One two three.", "--url", tone_server.ws_url, "--format", "opus", "--out", str(raw))
    assert run.code == 0 and raw.stat().st_size > 0 and not raw.read_bytes().startswith(b"OggS")
    for audio_format, name in [("opus", "x.bin"), ("mulaw", "x.wav"), ("mp3", "x.ogg")]:
        refused = await say("Hi.", "--url", tone_server.ws_url, "--format", audio_format,
                            "--out", str(tmp_path / name))  # fmt: skip
        assert refused.code == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert not (tmp_path / name).exists()


async def test_cli_raw_pcm_on_stdout_with_verbose_timings(tone_server: RunningServer) -> None:
    run = await say("One two three. Four five.", "--url", tone_server.ws_url, "--voice", "low", "--out", "-",
                    "--verbose")  # fmt: skip

    assert run.code == 0, run.stderr
    assert "aplay -f S16_LE -r 24000 -c 1" in run.stderr
    segments = re.findall(r"^segment (\d+) · (\d+) chars · ([\d.]+) ms audio · text→audio ([\d.]+) ms", run.stderr,
                          re.MULTILINE)  # fmt: skip
    assert [(seq, chars, float(ms)) for seq, chars, ms, _ in segments] == [
        ("0", "14", pytest.approx(tone_ms("One two three."), abs=0.1)),
        ("1", "10", pytest.approx(tone_ms("Four five."), abs=0.1)),
    ]
    assert re.search(r"^say: first audio [\d.]+ ms after the first text$", run.stderr, re.MULTILINE)
    done = re.search(r"^done · 2 segments · ([\d.]+) ms audio · .*time to first audio [\d.]+ ms \(server [\d.]+ ms\)",
                     run.stderr, re.MULTILINE)  # fmt: skip
    assert done is not None, run.stderr
    # Stdout holds the audio and nothing else: as many bytes as the server reported (printed to 0.1 ms).
    assert len(run.stdout) == pytest.approx(float(done.group(1)) * PCM_BYTES_PER_MS, abs=0.05 * PCM_BYTES_PER_MS)
    assert len(run.stdout) == tone_bytes("One two three.", "Four five.")


async def test_cli_stdin_is_spoken_before_it_ends(tone_server: RunningServer) -> None:
    # No --out: stdout is a pipe, so raw PCM goes there.
    process = await start_say("--stdin", "--url", tone_server.ws_url, stdin=True)
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None
    stdin.write(b"One two three. Four")
    await stdin.drain()

    first_sentence = tone_bytes("One two three.")
    audio = bytearray()

    async def read_first_sentence() -> None:
        while len(audio) < first_sentence:
            data = await stdout.read(65536)
            assert data, "stdout closed early"
            audio.extend(data)

    await asyncio.wait_for(read_first_sentence(), 15)
    assert process.returncode is None  # stdin is still open: this audio was streamed
    assert len(audio) == first_sentence  # and "Four" waits for its sentence to end

    stdin.write(b" five six.\n")
    stdin.close()
    rest, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, stderr.decode()
    assert len(audio) + len(rest) == tone_bytes("One two three.", "Four five six.")
    assert "24000 Hz" in stderr.decode()


def refused_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_cli_reports_connection_and_usage_failures(tmp_path: Path) -> None:
    out = str(tmp_path / "x.wav")
    refused = await say("Hi.", "--url", f"ws://127.0.0.1:{refused_port()}/v1/tts/stream", "--out", out)
    assert refused.code == 1 and refused.stdout == b""
    assert refused.stderr.count("\n") == 1 and "connection refused" in refused.stderr

    not_ws = await say("Hi.", "--url", "http://127.0.0.1:8000/v1/tts/stream", "--out", out)
    assert not_ws.code == 2 and "not a WebSocket URL" in not_ws.stderr

    no_text = await say("--out", out)
    assert no_text.code == 2 and "give the text to speak" in no_text.stderr

    unknown_type = await say("Hi.", "--out", str(tmp_path / "x.xyz"))
    assert unknown_type.code == 2 and "cannot tell the file type" in unknown_type.stderr


async def test_cli_server_error_exits_1_with_its_code(tone_server: RunningServer, tmp_path: Path) -> None:
    run = await say("Hi.", "--url", tone_server.ws_url, "--voice", "nope", "--out", str(tmp_path / "x.wav"))
    assert run.code == 1 and run.stdout == b""
    assert run.stderr.startswith("say: server error unknown_voice: ") and run.stderr.count("\n") == 1


async def test_cli_sends_the_api_key_from_the_environment(tone_provider: ToneProvider) -> None:
    async with keyed_server(tone_provider) as server:
        url = server.ws_url
        accepted = await say("Hi.", "--url", url, "--out", "-", env=say_env(STREAM_SERVER_API_KEY=GOOD_KEY))
        rejected = await say("Hi.", "--url", url, "--out", "-", env=say_env(STREAM_SERVER_API_KEY="wrong-key"))
        missing = await say("Hi.", "--url", url, "--out", "-")
    assert accepted.code == 0, accepted.stderr
    assert rejected.code == 1 and rejected.stderr.count("\n") == 1
    assert "unauthorized" in rejected.stderr and "401" in rejected.stderr and "wrong-key" not in rejected.stderr
    assert missing.code == 1 and "--api-key" in missing.stderr
