"""Prometheus metrics, one registry per app (so tests may run several servers in one process).

Under `--workers N` each worker is started with `PROMETHEUS_MULTIPROC_DIR` (a fresh directory of
the supervisor's), so prometheus-client keeps every value in a file there, and `/metrics`, from
whichever worker answers, sums the files of all: counters and histograms over every worker that
ran (a restarted one's counts are not lost), the open-streams gauge over the live ones (`livesum`;
the supervisor removes a dead worker's with `mark_process_dead`).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Time to first audio is tens of ms (a local voice) to about a second (a slow cloud upstream).
_TTFA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_SYNTHESIS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, shared_dir: str | None = None) -> None:
        """`shared_dir`: the workers' multiprocess directory (default: `PROMETHEUS_MULTIPROC_DIR`)."""
        self._shared_dir = shared_dir or os.environ.get(MULTIPROCESS_DIR_ENV) or None
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_streams = Gauge(
            "tts_active_streams", "Streams open now, by transport.", ["transport"], registry=r,
            multiprocess_mode="livesum",
        )
        self.ttfa = Histogram(
            "tts_time_to_first_audio_seconds",
            "From the first complete segment to its first audio sent.",
            buckets=_TTFA_BUCKETS,
            registry=r,
        )
        self.synthesis = Histogram(
            "tts_segment_synthesis_seconds",
            "Provider time for one segment, first request to last audio.",
            ["provider"],
            buckets=_SYNTHESIS_BUCKETS,
            registry=r,
        )
        self.frames = Counter("tts_frames_sent", "Binary audio frames (or SSE audio events) sent.", registry=r)
        self.bytes = Counter("tts_audio_bytes_sent", "Encoded audio bytes sent.", registry=r)
        self.ring_waits = Counter(
            "tts_ring_full_waits", "Times synthesis waited for a slow client (a full ring buffer).", registry=r
        )
        self.provider_errors = Counter(
            "tts_provider_errors", "Segments a provider failed, by provider and error code.", ["provider", "code"],
            registry=r,
        )  # fmt: skip
        self.cancels = Counter("tts_cancels", "Barge-ins (cancel, DELETE).", registry=r)

    @property
    def reads_files(self) -> bool:
        """Whether `render` reads every worker's files (run it off the event loop then)."""
        return self._shared_dir is not None

    def render(self) -> bytes:
        if self._shared_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self._shared_dir)
        return generate_latest(merged)
