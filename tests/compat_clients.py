"""What the tests of other vendors' client libraries share (tests/test_compat_*.py): a server
paced to real time, a real Pipecat pipeline around one vendor TTS service recording what it
pushes, and how LiveKit's audio and log are judged.

Imported by those modules only after they checked that the `compat` extra is installed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from loguru import logger as loguru_logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from stream_server.providers import tone
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import wait_for
from .test_ws_stream import expected_segment_ms

RATE = 24000
FIRST, SECOND = "Hello there, this is the first sentence.", "And here is a second one."
LONG = " ".join(["word"] * 150) + "."
PER_SEGMENT_MS = 3.0


@pytest.fixture
async def paced_server(tone_provider: ToneProvider) -> AsyncIterator[RunningServer]:
    """Audio paced to real time (as a voice agent plays it), so a barge-in finds audio queued."""
    async with run_server(tone_settings(max_lead_ms=100), {"tone": tone_provider}) as running:
        yield running


def ms_of_frames(frames: list[TTSAudioRawFrame]) -> float:
    return sum(len(f.audio) for f in frames) / 2 / RATE * 1000


# -- Pipecat ------------------------------------------------------------------------------------


class Recorder(FrameProcessor):
    """The end of the pipeline: every frame the TTS service pushed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)

    def audio(self, since: int = 0) -> list[TTSAudioRawFrame]:
        return [f for f in self.frames[since:] if isinstance(f, TTSAudioRawFrame)]

    def stopped(self, since: int = 0) -> int:
        return sum(isinstance(f, TTSStoppedFrame) for f in self.frames[since:])


class PipecatAgent:
    """A vendor's Pipecat TTS service (its URL pointed at the server) in a real pipeline."""

    def __init__(self, tts: FrameProcessor) -> None:
        self.tts = tts
        self.recorder = Recorder()
        self.worker = PipelineWorker(
            Pipeline([self.tts, self.recorder]),
            cancel_on_idle_timeout=False,
            params=PipelineParams(audio_out_sample_rate=RATE),
        )
        self.started = asyncio.Event()
        self.worker.event_handler("on_pipeline_started")(self._on_started)

    async def _on_started(self, worker: Any, frame: Frame) -> None:
        self.started.set()

    async def interrupt(self) -> int:
        """The user spoke: an interruption through the pipeline. Returns where the recorder's frames
        after it start (audio the service had pushed before it may still be arriving until then)."""
        await self.worker.queue_frame(InterruptionFrame())
        await wait_for(lambda: any(isinstance(f, InterruptionFrame) for f in self.recorder.frames))
        return next(i for i, f in enumerate(self.recorder.frames) if isinstance(f, InterruptionFrame)) + 1

    async def reply(self, text: str) -> None:
        """An LLM's reply, token by token."""
        await self.worker.queue_frame(LLMFullResponseStartFrame())
        for token in text.split(" "):
            await self.worker.queue_frame(LLMTextFrame(token + " "))
        await self.worker.queue_frame(LLMFullResponseEndFrame())

    async def run(self, script: Any) -> None:
        async def drive() -> None:
            await asyncio.wait_for(self.started.wait(), 10)
            try:
                await script(self)
            finally:
                await self.worker.queue_frame(EndFrame())

        runner = WorkerRunner()
        await runner.add_workers(self.worker)
        await asyncio.wait_for(asyncio.gather(runner.run(), drive()), 60)


@pytest.fixture
def pipecat_complaints() -> AsyncIterator[list[str]]:
    """What Pipecat logs at WARNING or above."""
    complaints: list[str] = []
    sink = loguru_logger.add(lambda message: complaints.append(str(message)), level="WARNING")
    yield complaints
    loguru_logger.remove(sink)


# LiveKit's emitter may end a segment with a 10 ms silent marker frame (tts.py, "a tiny empty marker").
LIVEKIT_MARKER_MS = 10.0


def livekit_ms_match(samples: int, expected_ms: float, segments: int) -> bool:
    got = samples / RATE * 1000
    return expected_ms - segments * PER_SEGMENT_MS <= got <= expected_ms + segments * PER_SEGMENT_MS + LIVEKIT_MARKER_MS


def livekit_complaints(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("livekit") and r.levelno >= logging.WARNING]


async def speaks_a_reply_as_it_streams(agent: PipecatAgent) -> None:
    """An LLM's two-sentence reply, token by token, through the agent's pipeline: the first
    sentence is heard before the rest of the reply exists, the vendor's end of the reply ends the
    audio context, and the audio is the tone's exact length."""

    async def script(agent: PipecatAgent) -> None:
        first, *rest = SECOND.split(" ")
        await agent.worker.queue_frame(LLMFullResponseStartFrame())
        # Pipecat sends a sentence once the next token shows it has ended.
        for token in [*FIRST.split(" "), first]:
            await agent.worker.queue_frame(LLMTextFrame(token + " "))
        await wait_for(lambda: bool(agent.recorder.audio()))
        for token in rest:
            await agent.worker.queue_frame(LLMTextFrame(token + " "))
        await agent.worker.queue_frame(LLMFullResponseEndFrame())
        await wait_for(lambda: agent.recorder.stopped() == 1)

    await agent.run(script)
    expected = tone.expected_duration_ms(FIRST) + tone.expected_duration_ms(SECOND)
    assert ms_of_frames(agent.recorder.audio()) == pytest.approx(expected, abs=2 * PER_SEGMENT_MS)


def word_frame_offsets_ms(agent: PipecatAgent) -> list[float]:
    """Each word frame Pipecat made from the vendor's timestamps, in ms from the first, checked to
    be the reply's words in order."""
    words = [f for f in agent.recorder.frames if isinstance(f, TTSTextFrame)]
    assert [f.text for f in words] == (FIRST + " " + SECOND).split()
    return [(f.pts - words[0].pts) / 1e6 for f in words]


def beeps_ms() -> list[float]:
    """Where each word's beep is in the reply's audio: 80 ms a word, the second sentence after the
    first's audio (its resampler flush included)."""
    first_ms = expected_segment_ms(FIRST)
    return [80.0 * i for i in range(len(FIRST.split()))] + [first_ms + 80.0 * i for i in range(len(SECOND.split()))]
