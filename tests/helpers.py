"""Test helpers: a protocol-aware WebSocket client and audio checks on decoded output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError


@dataclass
class Transcript:
    """Everything a client received, in order: dicts for JSON messages, bytes for audio."""

    items: list[dict[str, Any] | bytes] = field(default_factory=list)

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.items if isinstance(m, dict) and (kind is None or m["type"] == kind)]

    def frames(self) -> list[bytes]:
        return [m for m in self.items if isinstance(m, bytes)]

    def frames_by_segment(self) -> dict[int, list[bytes]]:
        """Audio frames grouped under the `segment` message they follow."""
        groups: dict[int, list[bytes]] = {}
        current: int | None = None
        for item in self.items:
            if isinstance(item, bytes):
                assert current is not None, "audio frame outside a segment"
                groups[current].append(item)
            elif item["type"] == "segment":
                current = item["seq"]
                groups[current] = []
            elif item["type"] == "segment_end":
                assert item["seq"] == current
                current = None
        return groups


@dataclass
class ProviderRun:
    """What a client saw of a stream against a provider emulator, and what the emulator got."""

    transcript: Transcript
    requests: list[dict[str, Any]]

    def events(self) -> list[tuple[str, int | None]]:
        return [(m["type"], m.get("seq")) for m in self.transcript.messages() if m["type"] not in ("ready", "done")]

    def message(self, kind: str) -> dict[str, Any]:
        (found,) = self.transcript.messages(kind)
        return found

    def segment_audio(self) -> dict[str, np.ndarray]:
        """Each segment's text and its decoded audio (the client asks for pcm at 24 kHz)."""
        texts = {m["seq"]: m["text"] for m in self.transcript.messages("segment")}
        return {texts[seq]: pcm_samples(frames) for seq, frames in self.transcript.frames_by_segment().items()}


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any] | bytes:
    data = await ws.recv()
    return data if isinstance(data, bytes) else json.loads(data)


async def receive_until(ws: ClientConnection, kind: str, transcript: Transcript | None = None) -> Transcript:
    """Receive until a JSON message of type `kind` (included)."""
    transcript = transcript or Transcript()
    while True:
        item = await receive(ws)
        transcript.items.append(item)
        if isinstance(item, dict) and item["type"] == kind:
            return transcript


async def receive_all(ws: ClientConnection) -> Transcript:
    """Receive until the server closes the connection (with any code: check `ws.close_code`)."""
    transcript = Transcript()
    try:
        async for data in ws:
            transcript.items.append(data if isinstance(data, bytes) else json.loads(data))
    except ConnectionClosedError:
        pass
    return transcript


async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until a server-side state holds (a state to reach, not a race to paper over)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def pcm_samples(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32) / 32768.0


def decode_opus(packets: list[bytes]) -> tuple[np.ndarray, list[int]]:
    """Decode raw Opus packets with PyAV; returns the samples and each packet's decoded length."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    chunks: list[np.ndarray] = []
    lengths: list[int] = []
    for packet in packets:
        frames = decoder.decode(av.Packet(packet))
        samples = [f.to_ndarray().reshape(-1) for f in frames]
        lengths.append(sum(len(s) for s in samples))
        chunks += samples
    audio = np.concatenate(chunks) if chunks else np.zeros(0)
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / 32768.0
    return audio.astype(np.float32), lengths


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1.0 / rate)[int(np.argmax(spectrum))])


def assert_speech_like(samples: np.ndarray, rate: int, text: str) -> None:
    """Non-silent, a duration that fits the text, and an envelope with syllables and pauses."""
    duration = len(samples) / rate
    chars = len(text)
    # English TTS runs at roughly 10-20 characters per second.
    assert chars / 25 < duration < chars / 6, f"{duration:.2f} s for {chars} characters"
    assert rms(samples) > 0.02, "audio is (nearly) silent"
    window = rate // 50
    envelope = np.array([rms(samples[i : i + window]) for i in range(0, len(samples) - window, window)])
    loud = envelope > 0.1 * envelope.max()
    # Speech alternates loud and quiet stretches; a constant tone or noise would not.
    assert 0.3 < loud.mean() < 0.95, f"loud fraction {loud.mean():.2f}"
    assert np.count_nonzero(np.diff(loud.astype(int)) == 1) >= chars / 25, "too few syllable onsets"
    # Voice energy sits mostly below 4 kHz.
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    assert spectrum[(freqs > 80) & (freqs < 4000)].sum() > 0.7 * spectrum.sum()
