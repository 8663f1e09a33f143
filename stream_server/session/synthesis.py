"""One epoch of a stream's synthesis: segments → provider jobs → audio pipeline → the stream's ring.

A producer starts one job per segment, at most `lookahead + 1` at a time (segment n+1 is
synthesized while segment n is being sent), and the emitter drains the jobs in order through the
audio pipeline into the ring. A job takes its provider's audio as fast as it comes and holds it
for the emitter: a provider's request (and a cloud provider's concurrency slot) lasts only as long
as the upstream answers, never as long as a slow client reads. Backpressure works per segment: a
stream whose ring is full emits nothing, so it starts no job past its look-ahead. All of it runs in one task group: a barge-in, a new config or a stop
cancels the epoch's scope and starts a fresh epoch, and the core drops anything a cancelled epoch
still hands it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

import anyio
import numpy as np

from ..audio import AudioPipeline
from ..logs import log_event
from ..media import EncodedFrame, PcmChunk
from ..metrics import Metrics
from ..protocol import Error, ErrorCode, SegmentEnd, SegmentStart, Warning
from ..providers.base import Provider, ProviderError, Urgency, VoiceOptions
from .outputs import Synthesized
from .pauses import Pauses
from .planned import EndOfInput, Planned
from .timeline import PlacedWord, SegmentPlacer, pending

logger = logging.getLogger(__name__)

# Provider chunks are cut to this much audio before encoding, so a long sentence's first frames
# leave before the whole sentence is encoded, and no single encode holds a worker for long
# (200 ms of Opus is about 2 ms of CPU; raw PCM far less).
ENCODE_SLICE_MS: Final = 200
# Audio a listener will need within this long is urgent: it is encoded without waiting for the
# ahead gate (a new stream's first audio, a stream whose lead ran low).
URGENT_WITHIN_MS: Final = 1000.0
# The most audio one segment may have, whatever the provider sends: a generous speaking time per
# character at the stream's speed plus a margin. English is ~15 characters a second; text read
# character by character is slower (Piper reads "中" as "Chinese letter": 0.37 s each), so 0.5 s.
# It bounds what a job holds for its emitter (a 300-character segment: 160 s, 15 MB of 24 kHz
# float samples at speed 1); past it the segment ends in an error.
MAX_AUDIO_S_PER_CHAR: Final = 0.5
MAX_AUDIO_MARGIN_S: Final = 10.0


def max_segment_audio_s(text: str, speed: float) -> float:
    return (len(text) * MAX_AUDIO_S_PER_CHAR + MAX_AUDIO_MARGIN_S) / speed


class Sink(Protocol):
    """The stream this synthesis feeds (runner.Stream): waits where the core says to."""

    id: str

    async def next_segment(self, epoch: int) -> Planned | EndOfInput: ...

    async def put(self, epoch: int, output: Synthesized, ms: float = 0.0) -> None: ...

    def segment_done(self, epoch: int, planned: Planned) -> None: ...

    def finished(self, epoch: int) -> None: ...

    def provider_audio(self) -> None: ...

    def ahead_ms(self) -> float: ...


@dataclass(slots=True)
class SynthesisResources:
    """What every stream's synthesis shares on this server."""

    encode_executor: Executor
    metrics: Metrics | None = None
    ahead_gate: asyncio.Semaphore | None = None
    """How many streams may encode audio far ahead of playback at once."""


class _End:
    pass


_END: Final = _End()


@dataclass(slots=True)
class _Job:
    planned: Planned
    text: str
    """What the provider gets: the segment's text, without emoji unless the stream reads them."""
    urgency: Urgency
    """Urgent when the stream's next audio is this segment's; look-ahead until then."""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    chunks: asyncio.Queue[PcmChunk | _End] = field(default_factory=asyncio.Queue)
    """Unbounded as a queue; bounded by `max_segment_audio_s` of audio (see `_synthesize`)."""
    error: tuple[str, str] | None = None
    """(code, message) when no provider of the chain could synthesize the segment."""
    warnings: list[str] = field(default_factory=list)
    started: bool = False
    """Its `segment` message is in the ring."""
    audio_ms: float = 0.0
    held: PcmChunk | None = None
    """A chunk taken from the queue but left for the next batch (another sample rate)."""

    async def next_audio(self) -> tuple[PcmChunk | None, bool]:
        """The next chunk joined with those already waiting behind it (same rate, up to a slice).

        Providers that stream small pieces (40 ms over HTTP) would cost a pipeline call each;
        under load they pile up, and one call for the lot keeps up. Nothing waits for more to
        arrive. Returns the audio (or None) and whether the segment's end was reached.
        """
        first = self.held or await self.chunks.get()
        self.held = None
        if isinstance(first, _End):
            return None, True
        pieces, total, words = [first.samples], len(first.samples), list(first.words)
        while total < first.sample_rate * ENCODE_SLICE_MS // 1000 and not self.chunks.empty():
            following = self.chunks.get_nowait()
            if isinstance(following, _End):
                return _joined(pieces, first.sample_rate, words), True
            if following.sample_rate != first.sample_rate:
                self.held = following
                break
            pieces.append(following.samples)
            words += following.words
            total += len(following.samples)
        return _joined(pieces, first.sample_rate, words), False


class Synthesis:
    def __init__(
        self,
        sink: Sink,
        epoch: int,
        *,
        chain: Sequence[tuple[Provider, VoiceOptions]],
        audio: AudioPipeline,
        pauses: Pauses,
        lookahead: int,
        resources: SynthesisResources,
        speakable: Callable[[str], str] | None = None,
    ) -> None:
        """`speakable` turns a segment's text into the provider's (`without_emoji`)."""
        self._sink = sink
        self._speakable = speakable
        self._epoch = epoch
        self._chain = chain
        self._audio = audio
        self._pauses = pauses
        self._resources = resources
        self._metrics = resources.metrics
        self._slots = asyncio.Semaphore(lookahead + 1)
        # Bounded by the semaphore: at most lookahead + 1 jobs exist at once.
        self._jobs: asyncio.Queue[_Job | _End] = asyncio.Queue()
        self._unemitted = 0
        """Jobs created and not yet emitted: a new job is urgent when no earlier one is left."""
        self._put_ms = 0.0
        """The audio this epoch put into the ring: where in the epoch's timeline the ring's end is."""

    async def run(self) -> None:
        """Until every segment of the input is in the ring (forever, while input goes on)."""
        async with anyio.create_task_group() as jobs:
            jobs.start_soon(self._produce, jobs, name=f"produce-{self._sink.id}")
            await self._emit()
            jobs.cancel_scope.cancel()  # the producer has returned; nothing else is left

    async def _produce(self, jobs: anyio.abc.TaskGroup) -> None:
        while True:
            planned = await self._sink.next_segment(self._epoch)
            if isinstance(planned, EndOfInput):
                self._jobs.put_nowait(_END)
                return
            await self._slots.acquire()
            text = planned.text if self._speakable is None else self._speakable(planned.text).strip()
            job = _Job(planned, text, Urgency(urgent=self._unemitted == 0))
            self._unemitted += 1
            jobs.start_soon(self._run_job, job, name=f"synth-{self._sink.id}-{planned.seq}")
            self._jobs.put_nowait(job)

    async def _run_job(self, job: _Job) -> None:
        # Cancelled alone when its segment could not be emitted; then nobody reads its end either.
        with job.scope:
            await self._synthesize(job)
            job.chunks.put_nowait(_END)

    async def _synthesize(self, job: _Job) -> None:
        if not job.text:
            return  # nothing a voice should say (emoji only): no provider request
        metrics = self._metrics
        for index, (provider, voice) in enumerate(self._chain):
            produced = False
            started = time.perf_counter()
            options = replace(voice, urgency=job.urgency)
            most_s, held_s = max_segment_audio_s(job.text, voice.speed), 0.0
            try:
                # aclosing: a cancelled job closes the provider's stream now, not when GC gets to it.
                async with aclosing(provider.synthesize(job.text, options)) as chunks:
                    async for chunk in chunks:
                        chunk = _checked(chunk)
                        held_s += len(chunk.samples) / chunk.sample_rate
                        if held_s > most_s:
                            raise ProviderError(
                                f"{provider.name} sent more than {most_s:.0f} s of audio for "
                                f"{len(job.text)} characters", code=ErrorCode.PROVIDER_BAD_RESPONSE,
                            )  # fmt: skip
                        self._sink.provider_audio()
                        job.chunks.put_nowait(chunk)  # never waits: the upstream is read at its pace
                        produced = True
                if metrics is not None:
                    metrics.synthesis.labels(provider.name).observe(time.perf_counter() - started)
                return
            except ProviderError as exc:
                # Provider errors are written to be shown to the client: no text, no secrets.
                self._log("stream.provider_error", logging.WARNING, job, provider=provider.name, code=exc.code, error=str(exc))
                failure = (exc.code, str(exc))
            except Exception as exc:
                # A bug, not a provider's answer: the client gets a generic message; details (which
                # may quote the text) only at DEBUG.
                self._log("stream.synthesis_crashed", logging.ERROR, job, provider=provider.name, error=type(exc).__name__)
                logger.debug("stream.synthesis_crashed", exc_info=True, extra={"fields": {"stream": self._sink.id}})
                failure = (ErrorCode.PROVIDER_ERROR, f"{provider.name} failed on this segment")
            if metrics is not None:
                metrics.provider_errors.labels(provider.name, failure[0]).inc()
            # Audio already out cannot be taken back: a fallback would say part of it twice.
            if produced or index == len(self._chain) - 1:
                job.error = failure
                return
            successor = self._chain[index + 1][0].name
            job.warnings.append(f"{failure[1]}; {successor} synthesized this segment instead")

    async def _emit(self) -> None:
        while True:
            job = await self._jobs.get()
            if isinstance(job, _End):
                # A container's trailer: after the last segment, before `done`.
                await self._put_frames(None, await self._encode(self._audio.finish))
                self._sink.finished(self._epoch)
                return
            # The segment before it is out: the stream now waits for this one.
            job.urgency.promote()
            try:
                await self._emit_job(job)
            except Exception as exc:
                # Never leave a stream hanging on a bug: close the segment, say so, go on.
                self._log("stream.emit_failed", logging.ERROR, job, error=type(exc).__name__)
                logger.debug("stream.emit_failed", exc_info=True, extra={"fields": {"stream": self._sink.id}})
                job.scope.cancel()
                await self._close_segment(job, ErrorCode.INTERNAL_ERROR, "the server failed on this segment")
            finally:
                self._unemitted -= 1
                self._slots.release()

    async def _emit_job(self, job: _Job) -> None:
        if not job.text:
            await self._close_segment(job)  # no audio, and no pause around nothing said
            return
        segment, audio = job.planned.segment, self._audio
        if pause := self._pauses.before(segment):
            await self._put_frames(job, await self._encode(audio.pause, pause))
        # Where the segment's audio begins on the epoch's timeline; its words are placed from there.
        base_ms = audio.position_ms
        placer = SegmentPlacer(job.text, job.planned.text, job.planned.text_offset)
        while True:
            chunk, ended = await job.next_audio()
            if chunk is not None:
                placer.add(chunk.words)
                for piece in _slices(chunk):
                    frames = await self._encode(audio.push, piece)
                    if not placer.started and (trimmed_ms := audio.trimmed_ms) is not None:
                        placer.start(base_ms, trimmed_ms)
                    # A word's timing goes just before the frames that may hold its first sample.
                    await self._put_alignment(job, placer.release(audio.position_ms))
                    await self._put_frames(job, frames)
            if ended:
                break
        frames = await self._encode(audio.end_segment, self._pauses.after(segment))
        # No word outlasts the segment's sound (the provider's trailing silence was trimmed).
        await self._put_alignment(job, placer.rest(base_ms, max(base_ms, audio.sound_end_ms)))
        await self._put_frames(job, frames)
        await self._close_segment(job, *(job.error or (None, "")))

    async def _put_alignment(self, job: _Job, words: list[PlacedWord]) -> None:
        if not words:
            return
        if not job.started:
            await self._sink.put(self._epoch, SegmentStart(job.planned.seq, job.planned.text))
            job.started = True
        await self._sink.put(self._epoch, pending(job.planned.seq, words, self._put_ms))

    async def _close_segment(self, job: _Job, code: str | None = None, message: str = "") -> None:
        seq = job.planned.seq
        if not job.started:
            await self._sink.put(self._epoch, SegmentStart(seq, job.planned.text))
        await self._sink.put(self._epoch, SegmentEnd(seq, round(job.audio_ms, 3)))
        for warning in job.warnings:
            await self._sink.put(self._epoch, Warning(code=ErrorCode.PROVIDER_FALLBACK, message=warning, seq=seq))
        if code is not None:
            await self._sink.put(self._epoch, Error(code=code, message=message, seq=seq))
        self._sink.segment_done(self._epoch, job.planned)

    async def _encode(self, step: Callable[..., list[EncodedFrame]], *args: object) -> list[EncodedFrame]:
        if self._audio.cheap:
            # Under a millisecond a slice: less than the hop to a thread. Other streams get
            # their turn between two slices, and audio far ahead of its playback waits for the
            # gate, so that a few such slices at most stand before a listener's next audio.
            gate = self._resources.ahead_gate
            if gate is None or self._sink.ahead_ms() < URGENT_WITHIN_MS:
                frames = step(*args)
                await asyncio.sleep(0)
                return frames
            async with gate:
                frames = step(*args)
                await asyncio.sleep(0)
                return frames
        # MP3 and AAC are CPU work worth a thread. One stream's steps run one after another,
        # so the pipeline's state is never touched by two threads at once.
        return await asyncio.get_running_loop().run_in_executor(self._resources.encode_executor, step, *args)

    async def _put_frames(self, job: _Job | None, frames: list[EncodedFrame]) -> None:
        """Into the ring, a job's frames after its `segment` message (which goes first)."""
        for frame in frames:
            if job is not None and not job.started:
                await self._sink.put(self._epoch, SegmentStart(job.planned.seq, job.planned.text))
                job.started = True
            await self._sink.put(self._epoch, frame, frame.duration_ms)
            self._put_ms += frame.duration_ms
            if job is not None:
                job.audio_ms += frame.duration_ms

    def _log(self, event: str, level: int, job: _Job, **fields: object) -> None:
        log_event(logger, event, level=level, stream=self._sink.id, seq=job.planned.seq, **fields)


def _joined(pieces: list[np.ndarray], rate: int, words: list) -> PcmChunk:
    return PcmChunk(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), rate, tuple(words))


def _checked(chunk: PcmChunk) -> PcmChunk:
    """A provider's chunk as the pipeline needs it: mono float32 samples, a positive rate."""
    samples = chunk.samples
    if samples.ndim != 1 or chunk.sample_rate <= 0:
        raise ProviderError(f"provider sent unusable audio (shape {samples.shape}, rate {chunk.sample_rate})")
    if samples.dtype != np.float32:
        return PcmChunk(samples.astype(np.float32), chunk.sample_rate, chunk.words)
    return chunk


def _slices(chunk: PcmChunk) -> list[PcmChunk]:
    step = max(1, chunk.sample_rate * ENCODE_SLICE_MS // 1000)
    if len(chunk.samples) <= step:
        return [chunk]
    return [PcmChunk(chunk.samples[i : i + step], chunk.sample_rate) for i in range(0, len(chunk.samples), step)]
