"""A segment of a one-shot Piper voice: each piece (`piper_pieces.py`) one inference, one job.

For voices whose graph cannot be cut (`piper_split.py`), or with `--piper-chunked false`. The
graph has its durations as a second output where it allows (`piper_split.with_durations`), so
these voices give word timings too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from piper import PiperVoice, SynthesisConfig

from ..media import PcmChunk, WordTiming
from .piper_pieces import SentenceGain, cut_edge_start, phonemes_per_piece, split_phonemes, trim_cut_edges
from .piper_words import SegmentWords, phoneme_times, phonemizer_text

SHARED_INFERENCE_S = 4.0
"""While another stream's work waits for a worker, a piece is cut to at most this much audio, so
that the other waits at most one short inference. Alone, a sentence up to the cap
(`--piper-max-inference-s`) stays one inference and keeps its prosody whole."""


@dataclass(frozen=True, slots=True)
class _Piece:
    phonemes: list[str]
    gain: SentenceGain
    """Shared by the pieces of one sentence."""
    cut_before: bool
    cut_after: bool
    index: int
    """Its place among the segment's pieces as planned (for its words)."""
    offset: int = 0
    """Where its phonemes start in the planned piece's (a piece cut again while others wait)."""


class OneShotSegment:
    """A segment's audio, one piece per `next()`, run on the pool's threads (never two at once).

    The first `next()` phonemizes the whole segment and cuts it into pieces (a millisecond next to
    an inference's hundreds), so the number of pieces is known from then on and the last one says
    that the segment is over: no extra queued job (a whole turn of the queue under load) just to
    find nothing left. Piper's own `synthesize` does the same per sentence: phonemes to ids, one
    inference, scaled to full scale; a sentence under the cap comes out as it would from there.
    """

    def __init__(
        self,
        voice: PiperVoice,
        text: str,
        length_scale: float,
        max_inference_s: float,
        phonemize_word: Callable[[str], list[str]],
        contended: Callable[[], bool] = lambda: False,
    ) -> None:
        """`contended`: whether other streams' work waits now (asked as each piece starts);
        `phonemize_word`: a written word said alone (for word timings)."""
        self._voice = voice
        self._phonemize_word = phonemize_word
        self._rate = voice.config.sample_rate
        self._text = text
        self._config = SynthesisConfig(length_scale=length_scale)
        self._limit = phonemes_per_piece(max_inference_s, length_scale)
        self._shared_limit = phonemes_per_piece(min(max_inference_s, SHARED_INFERENCE_S), length_scale)
        self._contended = contended
        self._left: deque[_Piece] | None = None
        self._words: SegmentWords | None = None
        self._yielded = 0
        """Samples returned so far: where the next piece's audio starts on the segment's."""
        self._pending_words: list[WordTiming] = []

    @property
    def exhausted(self) -> bool:
        return self._left is not None and not self._left

    def next(self) -> PcmChunk | None:
        if self._left is None:
            self._left = deque(self._plan())
            self._words = SegmentWords(self._text, [p.phonemes for p in self._left], self._phonemize_word)
        if not self._left:
            return None
        piece = self._left.popleft()
        if len(piece.phonemes) > self._shared_limit and self._contended():
            piece, *rest = _cut_again(piece, self._shared_limit)
            self._left.extendleft(reversed(rest))
        ids = self._voice.phonemes_to_ids(piece.phonemes)
        result = self._voice.phoneme_ids_to_audio(ids, self._config, include_alignments=True)
        audio, id_samples = result if isinstance(result, tuple) else (result, None)
        audio = piece.gain.apply(audio)
        dropped = cut_edge_start(audio, self._rate) if piece.cut_before else 0
        audio = trim_cut_edges(audio, self._rate, start=piece.cut_before, end=piece.cut_after)
        self._time_words(piece, id_samples, dropped)
        if not len(audio):
            return None
        self._yielded += len(audio)
        words, self._pending_words = tuple(self._pending_words), []
        return PcmChunk(audio, self._rate, words)

    def _time_words(self, piece: _Piece, id_samples: np.ndarray | None, dropped: int) -> None:
        if id_samples is None or self._words is None:
            return  # a graph without durations: no timings
        try:
            times = phoneme_times(piece.phonemes, id_samples.tolist(), self._voice.config.phoneme_id_map, self._rate)
        except ValueError:
            return
        offset_ms = 1000.0 * (self._yielded - dropped) / self._rate
        shifted = [(start + offset_ms, end + offset_ms) for start, end in times]
        self._pending_words.extend(self._words.piece_timed(piece.index, shifted, start=piece.offset))

    def _plan(self) -> list[_Piece]:
        planned: list[_Piece] = []
        for sentence in self._voice.phonemize(phonemizer_text(self._text)):
            if not sentence:
                continue  # Piper skips a sentence without phonemes
            parts = split_phonemes(sentence, self._limit)
            gain = SentenceGain()
            for index, part in enumerate(parts):
                planned.append(
                    _Piece(part, gain, cut_before=index > 0, cut_after=index < len(parts) - 1, index=len(planned))
                )
        return planned


def _cut_again(piece: _Piece, limit: int) -> list[_Piece]:
    """`piece` in shorter pieces, the seams of its own ends kept at the outer ends. They keep the
    planned piece's index, and say where in its phonemes they start, for their words' times."""
    parts = split_phonemes(piece.phonemes, limit)
    last = len(parts) - 1
    cut = []
    cursor = 0
    for i, part in enumerate(parts):
        while piece.phonemes[cursor] == " ":
            cursor += 1  # the spaces the cut dropped
        cut.append(
            _Piece(
                part,
                piece.gain,
                cut_before=piece.cut_before or i > 0,
                cut_after=piece.cut_after or i < last,
                index=piece.index,
                offset=piece.offset + cursor,
            )
        )
        cursor += len(part)
    return cut
