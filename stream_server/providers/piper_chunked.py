"""A segment of a chunked Piper voice: front part per piece, then the decoder window by window.

Each `next()` is one job on the provider's pool (`priority_pool.py`), run on its threads, never
two of one segment at once: the first phonemizes the segment and plans its pieces and words; then
each piece takes one job for its front part (phoneme ids → latent and durations) with its first,
small decoder window (`piper_windows.py`), and one job per later window. So a sentence's first
audio leaves after the front part and one small window, and a long sentence gives its worker
back to the queue between windows. The first window rides the front part's job because the next
job of a segment is submitted only once the event loop hears that the last one is done: a front
part alone would let the worker start any other queued job (another segment's look-ahead) in
that moment, before this sentence's first audio (measured: about 40 ms more first audio on the
benchmark paragraph, one worker, one segment of look-ahead).

Pieces (`piper_pieces.py`) are still cut at `max_inference_s` of expected audio for these voices:
the decoder's memory is bounded by the windows now, but the front part's is not (its alignment
path is phoneme ids × latent frames, quadratic in the sentence's length). The cut that yields the
worker while other streams wait (`SHARED_INFERENCE_S`) is not needed: windows do that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime
from piper import PiperVoice

from ..media import PcmChunk, WordTiming
from .piper_pieces import SentenceGain, cut_edge_start, phonemes_per_piece, split_phonemes, trim_cut_edges
from .piper_windows import Window, plan_windows
from .piper_words import SegmentWords, phoneme_times, phonemizer_text


@dataclass(frozen=True, slots=True)
class ChunkedModel:
    """A voice's graph in two sessions (`piper_split.py`)."""

    front: onnxruntime.InferenceSession
    decoder: onnxruntime.InferenceSession
    latent_name: str
    hop: int
    """Samples per latent frame, measured on the decoder."""
    reference_peak: float
    """The loudest raw peak of the calibration sentences at start-up (see `SentenceGain`)."""

    def run_front(self, voice: PiperVoice, ids: list[int], length_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(latent [1, C, frames], frames per phoneme id)."""
        config = voice.config
        args = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([config.noise_scale, length_scale, config.noise_w_scale], dtype=np.float32),
        }
        if config.num_speakers > 1:
            args["sid"] = np.array([config.default_speaker_id or 0], dtype=np.int64)
        latent, durations = self.front.run(None, args)
        return latent, np.asarray(durations).reshape(-1).astype(np.int64)

    def decode(self, latent: np.ndarray) -> np.ndarray:
        return np.asarray(self.decoder.run(None, {self.latent_name: latent})[0]).reshape(-1)


@dataclass(slots=True)
class _Piece:
    phonemes: list[str]
    gain: SentenceGain
    cut_before: bool
    cut_after: bool


@dataclass(slots=True)
class _Decoding:
    """The piece being decoded: its latent, its windows left, its phonemes' times (ms from its
    raw audio's start) until its first window has placed its words."""

    index: int
    piece: _Piece
    latent: np.ndarray
    windows: deque[Window]
    times: list[tuple[float, float]] | None


class ChunkedSegment:
    def __init__(
        self,
        voice: PiperVoice,
        model: ChunkedModel,
        text: str,
        length_scale: float,
        max_inference_s: float,
        phonemize_word: Callable[[str], list[str]],
    ) -> None:
        self._voice = voice
        self._model = model
        self._rate = voice.config.sample_rate
        self._text = text
        self._length_scale = length_scale
        self._limit = phonemes_per_piece(max_inference_s, length_scale)
        self._phonemize_word = phonemize_word
        self._pieces: deque[_Piece] | None = None
        self._piece_count = 0
        self._words: SegmentWords | None = None
        self._decoding: _Decoding | None = None
        self._yielded = 0
        """Samples returned so far: where the next chunk starts on the segment's audio."""
        self._pending_words: list[WordTiming] = []

    @property
    def exhausted(self) -> bool:
        return self._pieces is not None and not self._pieces and self._decoding is None

    def next(self) -> PcmChunk | None:
        """One job's work: a piece's front part and its first window, or a later window. None: no
        audio from this job (nothing left, or a window of silence trimmed away)."""
        if self._pieces is None:
            self._plan()
        if self._decoding is None:
            assert self._pieces is not None
            if not self._pieces:
                return None
            self._start_piece(self._pieces.popleft())
        assert self._decoding is not None
        return self._decode_window(self._decoding)

    def _plan(self) -> None:
        planned = []
        for sentence in self._voice.phonemize(phonemizer_text(self._text)):
            if not sentence:
                continue  # Piper skips a sentence without phonemes
            parts = split_phonemes(sentence, self._limit)
            gain = SentenceGain(floor=self._model.reference_peak)
            for index, part in enumerate(parts):
                planned.append(_Piece(part, gain, cut_before=index > 0, cut_after=index < len(parts) - 1))
        self._pieces = deque(planned)
        self._words = SegmentWords(self._text, [p.phonemes for p in planned], self._phonemize_word)

    def _start_piece(self, piece: _Piece) -> None:
        ids = self._voice.phonemes_to_ids(piece.phonemes)
        latent, durations = self._model.run_front(self._voice, ids, self._length_scale)
        samples = (durations * self._model.hop).tolist()
        try:
            times = phoneme_times(piece.phonemes, samples, self._voice.config.phoneme_id_map, self._rate)
        except ValueError:
            times = []  # durations that do not fit the ids: this piece's words go untimed, its audio not
        windows = deque(plan_windows(latent.shape[2]))
        index = self._piece_count
        self._piece_count += 1
        self._decoding = _Decoding(index, piece, latent, windows, times)

    def _decode_window(self, decoding: _Decoding) -> PcmChunk | None:
        window = decoding.windows.popleft()
        context = np.ascontiguousarray(decoding.latent[:, :, window.context_start : window.context_end])
        audio = self._model.decode(context)[window.kept(self._model.hop)]
        first, last = window.start == 0, not decoding.windows
        piece = decoding.piece
        audio = piece.gain.apply(audio)
        dropped = cut_edge_start(audio, self._rate) if first and piece.cut_before else 0
        audio = trim_cut_edges(audio, self._rate, start=first and piece.cut_before, end=last and piece.cut_after)
        if decoding.times is not None:
            assert self._words is not None
            offset_ms = 1000.0 * (self._yielded - dropped) / self._rate
            times = [(start + offset_ms, end + offset_ms) for start, end in decoding.times]
            self._pending_words.extend(self._words.piece_timed(decoding.index, times))
            decoding.times = None
        if last:
            self._decoding = None
        if not len(audio):
            return None
        self._yielded += len(audio)
        words, self._pending_words = tuple(self._pending_words), []
        return PcmChunk(audio, self._rate, words)
