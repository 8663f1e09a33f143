"""Writing a stream's PCM into an audio file, encoded here with PyAV as the audio arrives.

Why not ask the server for the container: its containers are built for live streaming, so the
fields only known at the end stay unknown (WAV sizes 0xFFFFFFFF, FLAC without a total length,
MP3 without a Xing/Info header, WebM without a duration). A file on disk is seekable, so a muxer
here can fill them in at the end and every player shows the right duration and can seek. PCM on
the wire also keeps the per-segment timings exact, and allows containers the server does not
stream (.m4a).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class _Container:
    def __init__(self, muxer: str, codec: str, rate: int | None = None) -> None:
        self.muxer = muxer
        self.codec = codec
        self.rate = rate
        """The codec's own rate (Opus: 48000 only); None: the stream's rate."""


CONTAINERS = {
    ".wav": _Container("wav", "pcm_s16le"),
    ".flac": _Container("flac", "flac"),
    ".mp3": _Container("mp3", "libmp3lame"),
    ".ogg": _Container("ogg", "libopus", 48000),
    ".opus": _Container("ogg", "libopus", 48000),
    ".webm": _Container("webm", "libopus", 48000),
    ".aac": _Container("adts", "aac"),
    ".m4a": _Container("ipod", "aac"),
}


class PcmFileWriter:
    """s16le mono PCM in, an audio file of the type its extension names out."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        container = CONTAINERS[path.suffix.lower()]
        self._rate = sample_rate
        self._output = av.open(str(path), "w", format=container.muxer)
        stream = self._output.add_stream(container.codec, rate=container.rate or sample_rate)
        assert isinstance(stream, av.AudioStream)
        self._stream = stream
        self._stream.layout = "mono"
        self._samples = 0
        self._odd_byte = b""

    def write(self, pcm: bytes) -> None:
        data = self._odd_byte + pcm
        usable = len(data) - len(data) % 2
        self._odd_byte = data[usable:]
        if not usable:
            return
        samples = np.frombuffer(data[:usable], dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._samples
        self._samples += samples.shape[1]
        # PyAV resamples (Opus needs 48 kHz) and regroups into the codec's frame size.
        for packet in self._stream.encode(frame):
            self._output.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._output.mux(packet)
        self._output.close()
