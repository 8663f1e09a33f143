"""A sentence's phonemes cut into Piper inferences of bounded audio length, and their seams.

Piper makes a sentence's audio in one ONNX inference, and the memory an inference takes grows
with the audio it makes: about 20 MB per second for en_US-joe-medium (measured peak RSS growth:
10 s of audio about 190 MB, 20 s about 390 MB, 33 s at speed 0.25 about 640 MB). Segments are
bounded in characters, not in audio: `"中" * 299` reads as 299 words "Chinese letter", 112 s of
audio and 3 GB in one inference. So each sentence is phonemized first and its phonemes cut, at
word boundaries (espeak's space phoneme), into pieces whose expected audio stays under a cap;
each piece is one inference (and one turn of the pool, so a long sentence does not hold a worker
for seconds while another user's first sentence waits).

The expected audio is estimated from the phoneme ids (`SECONDS_PER_ID`, calibrated on
en_US-joe-medium over English, numbers, CJK and emoji read aloud: 0.016-0.033 s per id at
length scale 1; below 40 ids the fixed silence around a sentence raises it to 0.04). A sentence
under the cap is one inference exactly as Piper makes it. A word longer than the cap (a run of
characters espeak reads as one word) is cut inside the word.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audio.seams import SILENCE_THRESHOLD, SeamSettings

SECONDS_PER_ID = 0.03
"""Expected seconds of audio per phoneme id at length scale 1 (a little above the measured)."""
IDS_AROUND = 3
"""Ids Piper adds around a piece's phonemes (BOS, PAD after it, EOS); each phoneme adds two."""
MIN_PHONEMES = 8
"""No piece is cut shorter than this, whatever the cap and the speed."""
WORD_BREAK = " "
CLAUSE_MARKS = frozenset(",;:")
"""A word boundary after one of these is where a speaker pauses anyway: the best place to cut."""
PIECE_SEAMS = SeamSettings()
"""Silence kept at a cut (about a pause between words) and the fade at its edges."""


def expected_seconds(id_count: int, length_scale: float) -> float:
    return id_count * SECONDS_PER_ID * length_scale


def phonemes_per_piece(max_seconds: float, length_scale: float) -> int:
    """The most phonemes one inference may take so that its expected audio stays under `max_seconds`."""
    ids = max_seconds / (SECONDS_PER_ID * length_scale)
    return max(MIN_PHONEMES, int((ids - IDS_AROUND) // 2))


def split_phonemes(phonemes: Sequence[str], limit: int) -> list[list[str]]:
    """`phonemes` in pieces of at most `limit`, cut at word boundaries (the space phoneme, which
    the cut drops), preferring one after a clause mark in the later half of a piece; a word longer
    than `limit` is cut inside. Under the limit: the phonemes as they are, one piece."""
    rest = list(phonemes)
    pieces: list[list[str]] = []
    while len(rest) > limit:
        cut = _cut(rest[: limit + 1], limit)
        piece, rest = _strip(rest[:cut]), _strip(rest[cut:])
        if piece:
            pieces.append(piece)
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _cut(window: list[str], limit: int) -> int:
    """Where to end the piece that starts `window` (which holds one phoneme more than `limit`, so
    that a word boundary just after the limit counts)."""
    breaks = [i for i in range(1, len(window)) if window[i] == WORD_BREAK]
    after_clause = [i for i in breaks if i >= limit // 2 and window[i - 1] in CLAUSE_MARKS]
    if after_clause:
        return after_clause[-1]
    if breaks:
        return breaks[-1]
    return limit


def _strip(phonemes: list[str]) -> list[str]:
    start, end = 0, len(phonemes)
    while start < end and phonemes[start] == WORD_BREAK:
        start += 1
    while end > start and phonemes[end - 1] == WORD_BREAK:
        end -= 1
    return phonemes[start:end]


class SentenceGain:
    """Piper scales each sentence's audio to full scale (peak 1.0). Pieces of one sentence share
    one gain, set by the loudest piece so far, so a cut does not jump in loudness (a later, louder
    piece lowers it from there on, so nothing clips).

    `floor`: a peak the gain never goes above 1/floor of. A chunked voice streams a sentence
    before its peak is known; normalizing by the peak so far would make its first window (often
    quiet onsets) loud and every louder window after it step down. With the voice's reference
    peak (the loudest of a few sentences at start-up) as the floor, the gain is one constant for
    nearly every sentence, so loudness is steady within and across sentences, and only a sentence
    louder than the reference lowers it (never clipping)."""

    def __init__(self, floor: float = 0.0) -> None:
        self._peak = floor

    def apply(self, audio: np.ndarray) -> np.ndarray:
        self._peak = max(self._peak, float(np.max(np.abs(audio))) if len(audio) else 0.0)
        if self._peak < 1e-8:
            return np.zeros_like(audio, dtype=np.float32)
        return np.clip(audio / self._peak, -1.0, 1.0).astype(np.float32)


def trim_cut_edges(audio: np.ndarray, rate: int, *, start: bool, end: bool) -> np.ndarray:
    """A piece's audio with the silence at a cut (its `start` and/or `end`) trimmed to a pause
    between words and the sound faded in or out there, as the seams between segments are."""
    if not (start or end):
        return audio
    loud = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    if not len(loud):
        return audio[:0]
    settings = PIECE_SEAMS
    fade = max(1, round(rate * settings.fade_ms / 1000))
    ramp = np.linspace(0.0, 1.0, fade + 1, dtype=np.float32)[1:]
    shaped = audio.astype(np.float32, copy=True)
    first, last = 0, len(shaped)
    if start:
        onset = int(loud[0])
        first = cut_edge_start(audio, rate)
        n = min(fade, last - onset)
        shaped[onset : onset + n] *= ramp[:n]
    if end:
        stop = int(loud[-1]) + 1
        last = min(len(shaped), stop + round(rate * settings.max_trailing_silence_ms / 1000))
        n = min(fade, stop - first)
        shaped[stop - n : stop] *= ramp[:n][::-1]
    return shaped[first:last]


def cut_edge_start(audio: np.ndarray, rate: int) -> int:
    """How many samples `trim_cut_edges(..., start=True)` drops from the start of `audio` (word
    timings are shifted by as much)."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    if not len(loud):
        return len(audio)
    return max(0, int(loud[0]) - round(rate * PIECE_SEAMS.max_leading_silence_ms / 1000))
