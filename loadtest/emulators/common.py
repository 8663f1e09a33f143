"""What the emulators share: their options, the faults they inject, and the audio they speak."""

from __future__ import annotations

import argparse
import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

import av
import numpy as np

WORD_MS = 80  # like stream_server's tone provider: every word is a beep and a gap


class Fault(StrEnum):
    NONE = "none"
    RATE_LIMITED = "429"  # 429 with Retry-After (and the service's rate-limit headers)
    SERVER_ERROR = "500"
    UNAUTHORIZED = "401"
    STALL = "stall"  # headers, then nothing: the client's timeout must fire
    CUTOFF = "cutoff"  # half the audio, then the connection drops
    OTHER = "other"  # Gemini: finishReason "OTHER" (no audio, or a stream that stops early)
    NO_AUDIO = "noaudio"  # a 200 with no audio in it


@dataclass
class EmulatorOptions:
    api_key: str = "test-key"
    first_byte_ms: float = 0.0
    """Delay before the first byte of audio, like a real service's time to first audio."""
    rtf: float = 0.0
    """Real-time factor of the audio stream: 10 sends 1 s of audio in 100 ms; 0: at once."""
    fault: Fault = Fault.NONE
    fault_times: int = 0
    """Requests that get the fault before the emulator behaves (0: every request)."""
    retry_after_s: float = 0.2
    chunk_ms: int = 40
    """Audio per streamed piece."""
    requests: list[dict] = field(default_factory=list)
    """Every request the emulator accepted or refused, for tests to inspect."""

    def fault_now(self) -> Fault:
        """The fault for this request (counts requests that got a fault, so retries succeed)."""
        if self.fault is Fault.NONE:
            return Fault.NONE
        if self.fault_times and self._faulted >= self.fault_times:
            return Fault.NONE
        self._faulted += 1
        return self.fault

    _faulted: int = 0


def speech(text: str, rate: int) -> np.ndarray:
    """Deterministic 'speech' for `text`: a beep per word (pitch from the word), int16 mono."""
    word_samples = rate * WORD_MS // 1000
    beep = word_samples * 3 // 4
    t = np.arange(beep) / rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    out = []
    for word in text.split():
        freq = 220.0 * (1.0 + (zlib.crc32(word.encode()) % 12) / 12.0)
        wave = np.zeros(word_samples)
        wave[:beep] = 0.3 * np.sin(2 * np.pi * freq * t) * ramp
        out.append(wave)
    audio = np.concatenate(out) if out else np.zeros(0)
    return (audio * 32767).astype(np.int16)


def expected_ms(text: str) -> float:
    return len(text.split()) * WORD_MS


def encode(pcm: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    """The whole `pcm` encoded (mp3, wav, ogg/opus...) with PyAV, as a service would send it."""
    import io

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=stream.codec_context.sample_rate or rate)
        for converted in resampler.resample(frame):
            for packet in stream.encode(converted):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


async def paced(data: bytes, options: EmulatorOptions, bytes_per_second: float) -> AsyncIterator[bytes]:
    """`data` in pieces of `chunk_ms`, after the first-byte delay, at `rtf` times real time."""
    await asyncio.sleep(options.first_byte_ms / 1000)
    step = max(1, int(bytes_per_second * options.chunk_ms / 1000))
    for i in range(0, len(data), step):
        yield data[i : i + step]
        if options.rtf > 0:
            await asyncio.sleep(options.chunk_ms / 1000 / options.rtf)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorOptions()
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9001, help="listen port, 0 for any free one (default: %(default)s)")
    parser.add_argument(
        "--api-key", default=defaults.api_key, help="the key the emulator expects from clients (default: %(default)s)"
    )
    parser.add_argument(
        "--first-byte-ms", type=float, default=0.0, help="delay before the first audio (default: %(default)s)"
    )
    parser.add_argument("--rtf", type=float, default=0.0, help="real-time factor of the audio stream (0: at once)")
    parser.add_argument("--fault", choices=[f.value for f in Fault], default="none", help="a fault to inject")
    parser.add_argument("--fault-times", type=int, default=0, help="faulty requests before behaving (0: all)")
    parser.add_argument("--retry-after-s", type=float, default=0.2, help="Retry-After of the 429 fault")


def options_from(args: argparse.Namespace) -> EmulatorOptions:
    return EmulatorOptions(
        api_key=args.api_key,
        first_byte_ms=args.first_byte_ms,
        rtf=args.rtf,
        fault=Fault(args.fault),
        fault_times=args.fault_times,
        retry_after_s=args.retry_after_s,
    )
