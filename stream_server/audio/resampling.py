"""A sample rate and format converter that runs in the calling thread.

PyAV's `AudioResampler` builds an FFmpeg filter graph with the default thread count, which starts
a pool of one thread per core for every resampler: two native threads per stream here, created at
each stream's start and freed only when the stream's objects are garbage-collected. Converting one
mono frame at a time gains nothing from them. This is the same graph (abuffer → aformat →
abuffersink, where FFmpeg inserts its swresample) with one thread, the caller's.
"""

from __future__ import annotations

from errno import EAGAIN

import av
from av.filter import Graph


class Resampler:
    def __init__(self, format: str, layout: str, rate: int) -> None:
        self._format = format
        self._layout = layout
        self._rate = rate
        self._graph: Graph | None = None
        self._source: tuple[str, str, int] | None = None

    def resample(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        """`frame` converted (frames may be held back by the filter); None flushes what is held."""
        if frame is None:
            if self._graph is None:
                return []
            self._graph.push(None)
            return self._pull()
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._source is None:
            self._source = source
            if source != (self._format, self._layout, self._rate):
                self._graph = self._build(frame)
        elif source != self._source:
            raise ValueError("the frame does not match this resampler's input")
        if self._graph is None:
            return [frame]  # nothing to convert
        self._graph.push(frame)
        return self._pull()

    def _build(self, frame: av.AudioFrame) -> Graph:
        graph = Graph()
        graph.threads = 1  # before any filter is added
        extra = {"time_base": str(frame.time_base)} if frame.time_base is not None else {}
        source = graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            **extra,
        )
        convert = graph.add(
            "aformat", sample_rates=str(self._rate), sample_fmts=self._format, channel_layouts=self._layout
        )
        sink = graph.add("abuffersink")
        source.link_to(convert)
        convert.link_to(sink)
        graph.configure()
        return graph

    def _pull(self) -> list[av.AudioFrame]:
        assert self._graph is not None
        frames: list[av.AudioFrame] = []
        while True:
            try:
                pulled = self._graph.pull()
            except EOFError:
                break
            except av.FFmpegError as exc:
                if exc.errno != EAGAIN:
                    raise
                break
            assert isinstance(pulled, av.AudioFrame)
            frames.append(pulled)
        return frames
