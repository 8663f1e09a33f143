"""One stream: text in → segments → provider → audio pipeline → ring. Transport-agnostic.

The transport calls `push_text`, `flush`, `cancel`, `end` and `aclose`, and sends what the
outbox yields. Everything the stream produces goes through its ring, in order: a `SegmentStart`
just before a segment's first frame, the frames, a `SegmentEnd`, and `STREAM_DONE` once input has
ended and all of it was synthesized.

Synthesis runs in a `_Synthesis`: a producer starts one job per segment, at most
`lookahead + 1` at a time (segment n+1 is synthesized while segment n is being sent), and an
emitter drains the jobs in order through the audio pipeline into the ring. Barge-in throws the
whole `_Synthesis` away and starts a fresh one; nothing produced before it can reach the ring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from ..audio import AudioPipeline, EncodedFrame
from ..audio.pipeline import EncoderSettings
from ..audio.seams import SeamSettings
from ..buffer import AudioRing
from ..logs import log_event
from ..metrics import Metrics
from ..protocol import Done, Error, ErrorCode, ProtocolError, SegmentEnd, SegmentStart, ServerMessage, Warning
from ..providers.base import PcmChunk, Provider, ProviderError, Urgency, VoiceOptions
from ..text import Ending, SentenceSegmenter
from ..text import Segment as TextSegment
from .options import StreamOptions

logger = logging.getLogger(__name__)

# Provider chunks are cut to this much audio before encoding, so a long sentence's first frames
# leave before the whole sentence is encoded, and no single encode holds a worker for long
# (200 ms of Opus is about 2 ms of CPU; raw PCM far less).
ENCODE_SLICE_MS: Final = 200
# A stream the server stopped, whose client does not take its goodbye, is cut after this long.
ABANDON_AFTER_S = 5.0
# Audio a listener will need within this long is urgent: it is encoded without waiting for the
# ahead gate (a new stream's first audio, a stream whose lead ran low).
URGENT_WITHIN_MS: Final = 1000.0
# Chunks a segment job may hold before the emitter takes them.
JOB_QUEUE_CHUNKS: Final = 8


class _StreamDone:
    """Marks the end of a stream's output in its ring; the transport sends `done` for it."""

    def __repr__(self) -> str:
        return "STREAM_DONE"


STREAM_DONE: Final = _StreamDone()

OutItem = EncodedFrame | ServerMessage | _StreamDone


@dataclass(frozen=True, slots=True)
class Pauses:
    """Silence after a segment, by how it ended."""

    sentence_ms: float = 200.0
    paragraph_ms: float = 450.0
    clause_ms: float = 80.0

    def after(self, segment: Segment) -> float:
        return self.sentence_ms if segment.ending is Ending.SENTENCE else self.clause_ms

    def before(self, segment: Segment) -> float:
        """A paragraph's pause is known when its next segment comes: the rest of it goes first."""
        return max(0.0, self.paragraph_ms - self.sentence_ms) if segment.paragraph_start else 0.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    ring_ms: int
    lookahead_segments: int
    max_pending_chars: int
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    seams: SeamSettings = field(default_factory=SeamSettings)
    pauses: Pauses = field(default_factory=Pauses)
    ahead_gate: asyncio.Semaphore | None = None
    """Shared by the server's streams: how many may encode audio far ahead of playback at once."""


@dataclass(slots=True)
class Segment:
    seq: int
    text: str
    ending: Ending
    paragraph_start: bool = False
    """A blank line precedes it in the text."""


@dataclass(slots=True)
class StreamStats:
    """What the client got (`segments`, `audio_ms` count what was sent, not what was dropped)."""

    started_at: float = field(default_factory=time.perf_counter)
    first_segment_at: float | None = None
    first_audio_at: float | None = None
    first_chunk_at: float | None = None
    """When the provider's first audio arrived."""
    segments: int = 0
    audio_ms: float = 0.0
    text_chars: int = 0
    segments_synthesized: int = 0

    def done_message(self) -> Done:
        ttfa = provider = None
        if self.first_segment_at is not None and self.first_audio_at is not None:
            ttfa = round((self.first_audio_at - self.first_segment_at) * 1000.0, 3)
            if self.first_chunk_at is not None:
                provider = round((self.first_chunk_at - self.first_segment_at) * 1000.0, 3)
        return Done(
            segments=self.segments,
            audio_ms=round(self.audio_ms, 3),
            text_chars=self.text_chars,
            elapsed_ms=round((time.perf_counter() - self.started_at) * 1000.0, 3),
            ttfa_ms=ttfa,
            provider_ms=provider,
        )


class StreamSession:
    def __init__(
        self,
        options: StreamOptions,
        provider: Provider,
        limits: StreamLimits,
        encode_executor: Executor,
        stream_id: str = "",
        fallbacks: Sequence[tuple[Provider, VoiceOptions]] = (),
        metrics: Metrics | None = None,
        charge: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options
        self._charge = charge
        self._fallbacks = list(fallbacks)
        self._metrics = metrics
        self.stream_id = stream_id
        self.stats = StreamStats()
        self.ring: AudioRing[OutItem] = AudioRing(limits.ring_ms, options.frame_ms)
        if metrics is not None:
            self.ring.on_wait = metrics.ring_waits.inc
        self._provider = provider
        self._limits = limits
        self._encode_executor = encode_executor
        self._segmenter = SentenceSegmenter(
            max_chars=options.max_segment_chars,
            max_bytes=options.max_segment_bytes,
            language=options.language,
            eager_first_segment=options.eager_first_segment or None,
        )
        self._boundary_timer: asyncio.TimerHandle | None = None
        self._next_seq = 0
        self._queued_chars = 0
        self._ended = False
        self.abandon: Callable[[], None] | None = None
        """Set by the transport that carries the stream: cuts its connection at once."""
        self._last_activity = time.monotonic()
        self._synthesis = self._new_synthesis()

    # -- input, called by the transport ------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def pending_chars(self) -> int:
        """Text accepted but not yet synthesized: still in the segmenter or queued as segments."""
        return self._segmenter.pending_chars + self._queued_chars

    def abandon_later(self) -> None:
        """The server stopped this stream and queued its goodbye: a client that has not taken it
        `ABANDON_AFTER_S` from now (it stopped reading) is cut off, so it cannot keep its slot."""
        asyncio.get_running_loop().call_later(ABANDON_AFTER_S, self._abandon_now)

    def _abandon_now(self) -> None:
        if self.abandon is not None:
            self.abandon()

    def idle_s(self, now: float) -> float:
        """How long the stream has been waiting for text with nothing to do (0 when busy).

        Busy: text queued for synthesis, or audio waiting to be sent; after `end` the stream
        finishes by itself. Text held back for a sentence end counts as waiting.
        """
        if self._ended or self._queued_chars or len(self.ring):
            return 0.0
        return now - self._last_activity

    def push_text(self, text: str) -> None:
        """Raises `ProtocolError` (stream_ended, pending_text_limit, or the client's
        `rate_limited` from `charge`); refused text changes nothing."""
        self._last_activity = time.monotonic()
        self._require_open()
        if self.pending_chars + len(text) > self._limits.max_pending_chars:
            raise ProtocolError(
                ErrorCode.PENDING_TEXT_LIMIT,
                f"the stream already holds {self.pending_chars} characters not yet synthesized "
                f"(limit {self._limits.max_pending_chars}); this text was dropped",
            )
        if self._charge is not None:
            self._charge(len(text))
        self.stats.text_chars += len(text)
        self._enqueue(self._segmenter.push(text))
        self._arm_boundary_timer()

    def flush(self) -> None:
        self._last_activity = time.monotonic()
        self._require_open()
        self._enqueue(self._segmenter.flush())
        self._disarm_boundary_timer()

    def flush_pending_boundary(self) -> None:
        """Take a possible sentence end that waits for more text as a real one.

        Called when the text stream has paused for `boundary_timeout_ms`: "...at 10 a.m." may
        go on ("a.m. tomorrow") or not, and an LLM that stopped there should be heard now.
        Text without a possible sentence end is left alone.
        """
        self._boundary_timer = None
        if not self._ended and self._segmenter.pending_boundary:
            self._enqueue(self._segmenter.flush())

    def end(self) -> None:
        self._require_open()
        self._disarm_boundary_timer()
        self._enqueue(self._segmenter.flush())
        self._ended = True
        self._synthesis.end()

    async def cancel(self) -> int:
        """Barge-in: drop buffered text, pending segments and queued audio; returns frames dropped.

        When this returns, nothing produced before the cancel is left anywhere it could be sent
        from. After `end`, the stream still finishes with `done`.
        """
        self._last_activity = time.monotonic()
        if self._metrics is not None:
            self._metrics.cancels.inc()
        self._disarm_boundary_timer()
        await self._synthesis.abort()
        dropped = self.ring.clear()
        self._segmenter.reset()
        self._queued_chars = 0
        self._synthesis = self._new_synthesis()
        if self._ended:
            self._synthesis.end()
        log_event(logger, "stream.cancel", stream=self.stream_id, dropped_items=dropped)
        return dropped

    async def aclose(self) -> None:
        """The client went away: stop synthesis now and release every buffer."""
        self._disarm_boundary_timer()
        await self._synthesis.abort()
        self.ring.clear()
        self._segmenter.reset()
        self._queued_chars = 0

    # -- output bookkeeping, called by the transport -----------------------------------------

    def note_sent(self, item: OutItem) -> None:
        """The transport has sent `item` to the client."""
        self._last_activity = time.monotonic()
        if isinstance(item, EncodedFrame):
            if self.stats.first_audio_at is None:
                self.stats.first_audio_at = time.perf_counter()
                if self._metrics is not None and self.stats.first_segment_at is not None:
                    self._metrics.ttfa.observe(self.stats.first_audio_at - self.stats.first_segment_at)
            self.stats.audio_ms += item.duration_ms
            if self._metrics is not None:
                self._metrics.frames.inc()
                self._metrics.bytes.inc(len(item.data))
        elif isinstance(item, SegmentEnd):
            self.stats.segments += 1

    # -- internals -----------------------------------------------------------------------------

    def _arm_boundary_timer(self) -> None:
        self._disarm_boundary_timer()
        timeout = self.options.boundary_timeout_ms
        if timeout and self._segmenter.pending_boundary:
            loop = asyncio.get_running_loop()
            self._boundary_timer = loop.call_later(timeout / 1000, self.flush_pending_boundary)

    def _disarm_boundary_timer(self) -> None:
        if self._boundary_timer is not None:
            self._boundary_timer.cancel()
            self._boundary_timer = None

    def _require_open(self) -> None:
        if self._ended:
            raise ProtocolError(ErrorCode.STREAM_ENDED, "input has ended; no more text is accepted")

    def _enqueue(self, segments: list[TextSegment]) -> None:
        for cut in segments:
            if self.stats.first_segment_at is None:
                self.stats.first_segment_at = time.perf_counter()
            segment = Segment(self._next_seq, cut.text, cut.ending, cut.paragraph_start)
            self._next_seq += 1
            self._queued_chars += len(cut.text)
            log_event(
                logger, "stream.segment", level=logging.DEBUG, stream=self.stream_id, seq=segment.seq, text=cut.text
            )
            self._synthesis.add(segment)

    def _segment_finished(self, segment: Segment) -> None:
        self._queued_chars = max(0, self._queued_chars - len(segment.text))
        self.stats.segments_synthesized += 1

    def _new_synthesis(self) -> _Synthesis:
        options = self.options
        return _Synthesis(
            chain=[(self._provider, VoiceOptions(voice=options.voice, speed=options.speed)), *self._fallbacks],
            audio=AudioPipeline(
                options.format, options.sample_rate, options.frame_ms, self._limits.encoder, self._limits.seams
            ),
            pauses=self._limits.pauses,
            ring=self.ring,
            lookahead=self._limits.lookahead_segments,
            encode_executor=self._encode_executor,
            ahead_gate=self._limits.ahead_gate,
            on_segment_finished=self._segment_finished,
            stream_id=self.stream_id,
            metrics=self._metrics,
            stats=self.stats,
        )


class _End:
    pass


def _ignore_segment(segment: Segment) -> None:
    pass


_END: Final = _End()


@dataclass(slots=True)
class _Job:
    segment: Segment
    urgency: Urgency
    """Urgent when the stream's next audio is this segment's; look-ahead until then."""
    chunks: asyncio.Queue[PcmChunk | _End] = field(default_factory=lambda: asyncio.Queue(JOB_QUEUE_CHUNKS))
    error: tuple[str, str] | None = None
    """(code, message) when no provider of the chain could synthesize the segment."""
    warnings: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
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
        pieces, total = [first.samples], len(first.samples)
        while total < first.sample_rate * ENCODE_SLICE_MS // 1000 and not self.chunks.empty():
            following = self.chunks.get_nowait()
            if isinstance(following, _End):
                return _joined(pieces, first.sample_rate), True
            if following.sample_rate != first.sample_rate:
                self.held = following
                break
            pieces.append(following.samples)
            total += len(following.samples)
        return _joined(pieces, first.sample_rate), False


class _Synthesis:
    def __init__(
        self,
        *,
        chain: Sequence[tuple[Provider, VoiceOptions]],
        audio: AudioPipeline,
        pauses: Pauses,
        ring: AudioRing[OutItem],
        lookahead: int,
        encode_executor: Executor,
        on_segment_finished: Callable[[Segment], None],
        ahead_gate: asyncio.Semaphore | None = None,
        stream_id: str,
        stats: StreamStats,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._stats = stats
        self._chain = chain
        self._audio = audio
        self._pauses = pauses
        self._ring = ring
        self._encode_executor = encode_executor
        self._ahead_gate = ahead_gate
        self._on_segment_finished = on_segment_finished
        self._stream_id = stream_id
        # Unbounded in count, bounded in size: the session refuses text past max_pending_chars.
        self._segments: asyncio.Queue[Segment | _End] = asyncio.Queue()
        self._jobs: asyncio.Queue[_Job | _End] = asyncio.Queue()
        self._slots = asyncio.Semaphore(lookahead + 1)
        self._unemitted = 0
        """Jobs created and not yet emitted: a new job is urgent when no earlier one is left."""
        self._job_tasks: set[asyncio.Task[None]] = set()
        self._producer = asyncio.create_task(self._produce(), name=f"produce-{stream_id}")
        self._emitter = asyncio.create_task(self._emit(), name=f"emit-{stream_id}")

    def add(self, segment: Segment) -> None:
        self._segments.put_nowait(segment)

    def end(self) -> None:
        self._segments.put_nowait(_END)

    async def abort(self) -> None:
        tasks = [self._producer, self._emitter, *self._job_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The session's callback is the one reference back to it: dropped, the session and this
        # synthesis (its codec and resampler, with their native threads) are freed by reference
        # counting when the stream closes, not at the next full garbage collection.
        self._on_segment_finished = _ignore_segment

    async def _produce(self) -> None:
        while True:
            item = await self._segments.get()
            if isinstance(item, _End):
                self._jobs.put_nowait(_END)
                return
            await self._slots.acquire()
            job = _Job(item, Urgency(urgent=self._unemitted == 0))
            self._unemitted += 1
            job.task = asyncio.create_task(self._run_job(job), name=f"synth-{self._stream_id}-{item.seq}")
            self._job_tasks.add(job.task)
            job.task.add_done_callback(self._job_tasks.discard)
            self._jobs.put_nowait(job)

    async def _run_job(self, job: _Job) -> None:
        for index, (provider, voice) in enumerate(self._chain):
            produced = False
            started = time.perf_counter()
            options = replace(voice, urgency=job.urgency)
            try:
                # aclosing: a cancelled job closes the provider's stream now, not when GC gets to it.
                async with aclosing(provider.synthesize(job.segment.text, options)) as chunks:
                    async for chunk in chunks:
                        if self._stats.first_chunk_at is None:
                            self._stats.first_chunk_at = time.perf_counter()
                        await job.chunks.put(_checked(chunk))
                        produced = True
                if self._metrics is not None:
                    self._metrics.synthesis.labels(provider.name).observe(time.perf_counter() - started)
                break
            except ProviderError as exc:
                # Provider errors are written to be shown to the client: no text, no secrets.
                log_event(
                    logger, "stream.provider_error", level=logging.WARNING, stream=self._stream_id,
                    seq=job.segment.seq, provider=provider.name, code=exc.code, error=str(exc),
                )
                failure = (exc.code, str(exc))
            except Exception as exc:
                # A bug, not a provider's answer: the client gets a generic message; details (which
                # may quote the text) only at DEBUG.
                log_event(
                    logger, "stream.synthesis_crashed", level=logging.ERROR, stream=self._stream_id,
                    seq=job.segment.seq, provider=provider.name, error=type(exc).__name__,
                )
                logger.debug("stream.synthesis_crashed", exc_info=True, extra={"fields": {"stream": self._stream_id}})
                failure = (ErrorCode.PROVIDER_ERROR, f"{provider.name} failed on this segment")
            if self._metrics is not None:
                self._metrics.provider_errors.labels(provider.name, failure[0]).inc()
            # Audio already out cannot be taken back: a fallback would say part of it twice.
            if produced or index == len(self._chain) - 1:
                job.error = failure
                break
            successor = self._chain[index + 1][0].name
            job.warnings.append(f"{failure[1]}; {successor} synthesized this segment instead")
        await job.chunks.put(_END)

    async def _emit(self) -> None:
        while True:
            job = await self._jobs.get()
            if isinstance(job, _End):
                # A container's trailer: after the last segment, before `done`.
                await self._put_frames(None, await self._encode(self._audio.finish))
                await self._ring.put(STREAM_DONE)
                return
            # The segment before it is out: the stream now waits for this one.
            job.urgency.promote()
            try:
                await self._emit_job(job)
            except Exception as exc:
                # Never leave a stream hanging on a bug: close the segment, say so, go on.
                log_event(
                    logger, "stream.emit_failed", level=logging.ERROR, stream=self._stream_id,
                    seq=job.segment.seq, error=type(exc).__name__,
                )
                logger.debug("stream.emit_failed", exc_info=True, extra={"fields": {"stream": self._stream_id}})
                if job.task is not None:
                    job.task.cancel()
                await self._close_segment(job, ErrorCode.INTERNAL_ERROR, "the server failed on this segment")
            finally:
                self._unemitted -= 1
                self._slots.release()

    async def _emit_job(self, job: _Job) -> None:
        if pause := self._pauses.before(job.segment):
            await self._put_frames(job, await self._encode(self._audio.pause, pause))
        while True:
            chunk, ended = await job.next_audio()
            if chunk is not None:
                for piece in _slices(chunk):
                    await self._put_frames(job, await self._encode(self._audio.push, piece))
            if ended:
                break
        frames = await self._encode(self._audio.end_segment, self._pauses.after(job.segment))
        await self._put_frames(job, frames)
        if job.error is None:
            await self._close_segment(job)
        else:
            await self._close_segment(job, *job.error)

    async def _close_segment(self, job: _Job, code: str | None = None, message: str = "") -> None:
        seq = job.segment.seq
        if not job.started:
            await self._ring.put(SegmentStart(seq, job.segment.text))
        await self._ring.put(SegmentEnd(seq, round(job.audio_ms, 3)))
        for warning in job.warnings:
            await self._ring.put(Warning(code=ErrorCode.PROVIDER_FALLBACK, message=warning, seq=seq))
        if code is not None:
            await self._ring.put(Error(code=code, message=message, seq=seq))
        self._on_segment_finished(job.segment)

    async def _encode(self, step: Callable[..., list[EncodedFrame]], *args: object) -> list[EncodedFrame]:
        if self._audio.cheap:
            # Under a millisecond a slice: less than the hop to a thread. Other streams get
            # their turn between two slices, and audio far ahead of its playback waits for the
            # gate, so that a few such slices at most stand before a listener's next audio.
            if self._ahead_gate is None or self._ahead_ms() < URGENT_WITHIN_MS:
                frames = step(*args)
                await asyncio.sleep(0)
                return frames
            async with self._ahead_gate:
                frames = step(*args)
                await asyncio.sleep(0)
                return frames
        # MP3 and AAC are CPU work worth a thread. One stream's steps run one after another,
        # so the pipeline's state is never touched by two threads at once.
        return await asyncio.get_running_loop().run_in_executor(self._encode_executor, step, *args)

    def _ahead_ms(self) -> float:
        """Audio made and not yet played: in the ring, and sent ahead of real time."""
        stats = self._stats
        sent_ahead = 0.0
        if stats.first_audio_at is not None:
            sent_ahead = max(0.0, stats.audio_ms - (time.perf_counter() - stats.first_audio_at) * 1000.0)
        return self._ring.buffered_ms + sent_ahead

    async def _put_frames(self, job: _Job | None, frames: list[EncodedFrame]) -> None:
        """Into the ring, a job's frames after its `segment` message (which goes first)."""
        for frame in frames:
            if job is not None and not job.started:
                await self._ring.put(SegmentStart(job.segment.seq, job.segment.text))
                job.started = True
            await self._ring.put(frame, frame.duration_ms)
            if job is not None:
                job.audio_ms += frame.duration_ms


def _joined(pieces: list[np.ndarray], rate: int) -> PcmChunk:
    return PcmChunk(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), rate)


def _checked(chunk: PcmChunk) -> PcmChunk:
    """A provider's chunk as the pipeline needs it: mono float32 samples, a positive rate."""
    samples = chunk.samples
    if samples.ndim != 1 or chunk.sample_rate <= 0:
        raise ProviderError(f"provider sent unusable audio (shape {samples.shape}, rate {chunk.sample_rate})")
    if samples.dtype != np.float32:
        return PcmChunk(samples.astype(np.float32), chunk.sample_rate)
    return chunk


def _slices(chunk: PcmChunk) -> list[PcmChunk]:
    step = max(1, chunk.sample_rate * ENCODE_SLICE_MS // 1000)
    if len(chunk.samples) <= step:
        return [chunk]
    return [PcmChunk(chunk.samples[i : i + step], chunk.sample_rate) for i in range(0, len(chunk.samples), step)]
