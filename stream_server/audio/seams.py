"""Seams between segments: trim a provider's silence, fade abrupt edges, add a natural pause.

Providers pad their output with silence of their own (Piper: about 50 ms before and 200 ms after
each sentence) and some start or stop mid-waveform, which clicks. `SegmentShaper` works on one
segment's samples at the provider's rate, sans I/O: it keeps at most `max_leading_silence_ms`
before the first sound and `max_trailing_silence_ms` after the last, and ramps the first and last
`fade_ms` of sound. The pause between sentences is then the server's choice, not the provider's
(`pause_ms`, added by the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# About -50 dBFS: below this a sample counts as silence.
SILENCE_THRESHOLD = 0.003
# Silence inside a segment is held back only this long (it may turn out to be trailing silence);
# a longer pause is real and goes out, so memory stays bounded whatever the provider sends.
MAX_HELD_SILENCE_MS = 1000


@dataclass(frozen=True, slots=True)
class SeamSettings:
    fade_ms: float = 5.0
    max_leading_silence_ms: float = 30.0
    max_trailing_silence_ms: float = 50.0


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


class SegmentShaper:
    def __init__(self, settings: SeamSettings, rate: int) -> None:
        self.rate = rate
        self._fade = max(1, round(rate * settings.fade_ms / 1000))
        self._max_leading = round(rate * settings.max_leading_silence_ms / 1000)
        self._max_trailing = round(rate * settings.max_trailing_silence_ms / 1000)
        self._max_held = round(rate * MAX_HELD_SILENCE_MS / 1000) + self._fade
        self._ramp = np.linspace(0.0, 1.0, self._fade + 1, dtype=np.float32)[1:]
        self._leading = _empty()
        self._started = False
        self.trimmed = 0
        """Samples of leading silence dropped (final once `started`): where the output begins in
        the provider's audio, for word timings."""
        # The end of what was pushed: the last `fade` samples of sound and any silence after
        # them. Held back until more sound arrives, or the segment ends.
        self._held = _empty()

    @property
    def started(self) -> bool:
        """The first sound was found: the output has begun."""
        return self._started

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Samples that are ready to go out; the rest is held back."""
        samples = np.asarray(samples, dtype=np.float32)
        if not self._started:
            samples = self._start(samples)
            if not len(samples):
                return samples
        data = np.concatenate((self._held, samples)) if len(self._held) else samples
        loud = np.flatnonzero(np.abs(data) > SILENCE_THRESHOLD)
        # Hold the last fade length of sound (for the fade-out) and the silence after it.
        keep_from = max(0, (loud[-1] + 1 if len(loud) else 0) - self._fade)
        keep_from = max(keep_from, len(data) - self._max_held)
        self._held = data[keep_from:].copy()
        return data[:keep_from]

    def end(self) -> np.ndarray:
        """The segment's rest: trailing silence trimmed to the maximum, the last sound faded out."""
        held, self._held = self._held, _empty()
        if not self._started:
            return _empty()
        loud = np.flatnonzero(np.abs(held) > SILENCE_THRESHOLD)
        sound_end = loud[-1] + 1 if len(loud) else 0
        sound = held[:sound_end].copy()
        fade = min(self._fade, len(sound))
        if fade:
            sound[-fade:] *= self._ramp[-fade:][::-1]
        trailing = held[sound_end : sound_end + self._max_trailing]
        return np.concatenate((sound, trailing))

    def _start(self, samples: np.ndarray) -> np.ndarray:
        loud = np.flatnonzero(np.abs(samples) > SILENCE_THRESHOLD)
        if not len(loud):
            before = len(self._leading) + len(samples)
            self._leading = np.concatenate((self._leading, samples))[-self._max_leading :] if self._max_leading else _empty()
            self.trimmed += before - len(self._leading)
            return _empty()
        onset = loud[0]
        lead = np.concatenate((self._leading, samples[:onset]))
        kept = lead[len(lead) - self._max_leading :] if self._max_leading else _empty()
        self.trimmed += len(lead) - len(kept)
        lead = kept
        sound = samples[onset:].copy()
        fade = min(self._fade, len(sound))
        sound[:fade] *= self._ramp[:fade]
        self._started = True
        self._leading = _empty()
        return np.concatenate((lead, sound))
