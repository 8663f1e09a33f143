"""What `say` tells the user on stderr: timings with --verbose, progress on a terminal."""

from __future__ import annotations

from typing import TextIO

from .messages import Done, Error, Ready, Warning
from .synthesize import SegmentTiming


class Reporter:
    def __init__(self, stream: TextIO, verbose: bool, progress: bool) -> None:
        self._out = stream
        self._verbose = verbose
        self._progress = progress and not verbose
        self._progress_shown = False

    def _line(self, text: str) -> None:
        self._clear_progress()
        print(text, file=self._out, flush=True)

    def _clear_progress(self) -> None:
        if self._progress_shown:
            print("\r\033[K", end="", file=self._out)
            self._progress_shown = False

    def ready(self, ready: Ready, to_stdout: bool) -> None:
        if to_stdout:
            if ready.format == "pcm":
                self._line(
                    f"say: raw PCM s16le mono at {ready.sample_rate} Hz on stdout; play it with "
                    f"`aplay -f S16_LE -r {ready.sample_rate} -c 1` or `ffplay -f s16le -ar {ready.sample_rate} -ac 1 -`"
                )
            else:
                self._line(f"say: {ready.format} ({ready.mime or 'audio'}) at {ready.sample_rate} Hz on stdout")
        if self._verbose:
            self._line(f"say: {ready.provider} voice {ready.voice}, {ready.format} at {ready.sample_rate} Hz")

    def first_audio(self, ttfa_ms: float | None) -> None:
        if self._verbose and ttfa_ms is not None:
            self._line(f"say: first audio {ttfa_ms:.1f} ms after the first text")

    def segment(self, timing: SegmentTiming, total_audio_ms: float) -> None:
        if self._verbose:
            latency = f"{timing.latency_ms:.1f} ms" if timing.latency_ms is not None else "n/a"
            self._line(
                f"segment {timing.seq} · {len(timing.text)} chars · {timing.audio_ms:.1f} ms audio · "
                f"text→audio {latency} · total {total_audio_ms / 1000:.1f} s audio"
            )
        elif self._progress:
            print(f"\rsegment {timing.seq} · {total_audio_ms / 1000:.1f} s audio", end="", file=self._out, flush=True)
            self._progress_shown = True

    def problem(self, event: Error | Warning) -> None:
        kind = "server error" if isinstance(event, Error) else "warning"
        where = f" (segment {event.seq})" if event.seq is not None else ""
        self._line(f"say: {kind} {event.code}{where}: {event.message}")

    def done(self, done: Done, ttfa_ms: float | None) -> None:
        self._clear_progress()
        if self._verbose:
            client = f"{ttfa_ms:.1f} ms" if ttfa_ms is not None else "n/a"
            server = f"{done.ttfa_ms:.1f} ms" if done.ttfa_ms is not None else "n/a"
            self._line(
                f"done · {done.segments} segments · {done.audio_ms:.1f} ms audio · {done.text_chars} chars · "
                f"time to first audio {client} (server {server}) · {done.elapsed_ms:.1f} ms"
            )

    def fail(self, message: str) -> None:
        self._line(f"say: {message}")
