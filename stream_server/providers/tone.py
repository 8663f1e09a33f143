"""`tone`: a deterministic, instant provider for protocol tests and for measuring the server itself.

Each word becomes a short beep followed by a gap, so the audio's duration is an exact function of
the text (`expected_duration_ms`) and no model time hides the server's own overhead. Each word's
chunk carries its exact timing (`word_timings`): the beep is the word, its characters share it
evenly.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import AsyncGenerator, Sequence

import numpy as np

from ..media import PcmChunk, WordTiming
from .base import VoiceInfo, VoiceOptions
from .spec import ProviderSettings, ProviderSpec, SharedHttpSettings

SAMPLE_RATE = 24000
BEEP_MS = 60
GAP_MS = 20
AMPLITUDE = 0.3
FADE_MS = 5
# Voices differ by pitch range so tests can tell them apart.
_PITCH_BASE = {"beep": 440.0, "low": 220.0}


_WORD_RE = re.compile(r"\S+")


def word_count(text: str) -> int:
    return len(text.split())


def word_timings(text: str, speed: float = 1.0) -> list[WordTiming]:
    """When each word of `text` sounds in the tone provider's audio: its beep."""
    total = _word_samples(speed)
    beep_ms = round(total * BEEP_MS / (BEEP_MS + GAP_MS)) * 1000.0 / SAMPLE_RATE
    timings = []
    for index, match in enumerate(_WORD_RE.finditer(text)):
        start = index * total * 1000.0 / SAMPLE_RATE
        word = match.group()
        char_ms = tuple(start + beep_ms * k / len(word) for k in range(len(word)))
        timings.append(WordTiming(word, match.start(), match.end(), start, start + beep_ms, char_ms))
    return timings


def expected_duration_ms(text: str, speed: float = 1.0) -> float:
    return word_count(text) * _word_samples(speed) * 1000.0 / SAMPLE_RATE


def _word_samples(speed: float) -> int:
    return round((BEEP_MS + GAP_MS) * SAMPLE_RATE / 1000 / speed)


def _beep(word: str, base: float, speed: float) -> np.ndarray:
    # crc32, not hash(): the pitch must not change with PYTHONHASHSEED.
    return _tone(zlib.crc32(word.encode()) % 12, base, speed)


@functools.lru_cache(maxsize=256)
def _tone(step: int, base: float, speed: float) -> np.ndarray:
    """One of 12 pitches per voice and speed: made once, shared read-only (the tone provider is
    what load tests measure the server with, so it must cost next to nothing)."""
    total = _word_samples(speed)
    beep = round(total * BEEP_MS / (BEEP_MS + GAP_MS))
    freq = base * (1.0 + step / 12.0)
    t = np.arange(beep) / SAMPLE_RATE
    wave = AMPLITUDE * np.sin(2 * np.pi * freq * t)
    fade = min(beep // 2, SAMPLE_RATE * FADE_MS // 1000)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    wave[:fade] *= ramp
    wave[beep - fade :] *= ramp[::-1]
    out = np.zeros(total, dtype=np.float32)
    out[:beep] = wave
    out.flags.writeable = False
    return out


class ToneProvider:
    name = "tone"
    max_chars: int | None = None
    max_bytes: int | None = None

    def __init__(self) -> None:
        self._voices = tuple(VoiceInfo(id=v, sample_rate=SAMPLE_RATE, language="en") for v in _PITCH_BASE)

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return self._voices

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        base = _PITCH_BASE[options.voice]
        for timing in word_timings(text, options.speed):
            yield PcmChunk(_beep(timing.text, base, options.speed), SAMPLE_RATE, (timing,))

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {}


class ToneSettings(ProviderSettings, kw_only=True):
    """None: the tone provider has nothing to set."""


def build(settings: ToneSettings, shared: SharedHttpSettings) -> ToneProvider:
    return ToneProvider()


SPEC = ProviderSpec(
    name=ToneProvider.name,
    capabilities={
        "streaming": "per word",
        "local": True,
        "purpose": "tests and benchmarks",
        "timestamps": ["word", "char"],
    },
    settings_type=ToneSettings,
    build=build,
)
