"""Streaming encoders: whole codec frames in, bytes ready to send out. PyAV does all the coding.

Two kinds: a bare codec (raw samples such as s16le or μ-law, raw Opus packets, MP3 frames), and a
codec inside a muxer writing to an in-memory pipe (Ogg, WebM, ADTS, FLAC, WAV). Each keeps its
state for the whole stream, so segments join into one continuous signal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol, cast

import av
import numpy as np

from .formats import OutputFormat

# The formats' sample types, as numpy dtypes, for making frames of silence.
_DTYPES = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64, "u8": np.uint8}
# Sample formats in order of preference when a codec takes several: 16 bits is all a lossy codec
# keeps, and libopus runs a third faster on it than on float.
_PREFERRED_FORMATS = ("s16", "s16p", "flt", "fltp", "s32", "s32p")
# Codecs that code each sample on its own, in a fixed number of bytes: any run of whole frames
# can be encoded in one call and cut into frames afterwards.
_SAMPLE_WISE = {"pcm_s16le": 2, "pcm_f32le": 4, "pcm_mulaw": 1, "pcm_alaw": 1}


Chunk = tuple[bytes, int]
"""Bytes ready to send, and how many samples of the input they carry out (0 for headers)."""


class Encoder(Protocol):
    sample_format: str
    """PyAV sample format the frames must have."""
    frame_samples: int
    """Samples per frame (the codec's own frame size where it has one)."""
    bytes_per_sample: int | None
    """For a bare sample-wise codec (raw PCM, μ-law, A-law): its bytes per sample; else None."""

    def encode(self, frame: av.AudioFrame) -> list[Chunk]:
        """What is complete and ready to send after this frame (possibly nothing yet)."""
        ...

    def emitted_samples(self) -> int:
        """How much of the input (in samples) has come out in the chunks returned so far."""
        ...

    def close(self) -> list[Chunk]:
        """End of stream: what the codec and muxer still hold (e.g. Ogg's end-of-stream page)."""
        ...


def _pick_sample_format(codec: av.Codec, name: str) -> str:
    offered = [f.name for f in codec.audio_formats or ()]
    for candidate in _PREFERRED_FORMATS:
        if candidate in offered:
            return candidate
    raise ValueError(f"{name}: no usable sample format among {offered}")


def silence(sample_format: str, samples: int) -> np.ndarray:
    dtype = _DTYPES[sample_format.rstrip("p")]
    return np.zeros((1, samples), dtype=dtype)


def _configure(context: av.AudioCodecContext, fmt: OutputFormat, rate: int, frame_samples: int, bitrate: int,
               complexity: int) -> None:
    context.sample_rate = rate
    context.layout = "mono"
    context.time_base = Fraction(1, rate)
    if fmt.codec == "libopus":
        context.bit_rate = bitrate
        # TTS output is clean, full-band speech: "audio" keeps it closest to the input.
        context.options = {
            "application": "audio",
            "frame_duration": str(1000 * frame_samples // rate),
            "compression_level": str(complexity),
        }
    elif fmt.codec == "flac":
        # FLAC's block size is ours to choose: one block per frame, so each goes out at once.
        context.options = {"frame_size": str(frame_samples)}


class CodecEncoder:
    """A bare codec: every packet is sent as it is (raw samples, Opus packets, MP3 frames)."""

    sample_format: str
    frame_samples: int
    bytes_per_sample: int | None

    def __init__(self, fmt: OutputFormat, rate: int, frame_samples: int, *, bitrate: int, complexity: int) -> None:
        codec = av.Codec(fmt.codec, "w")
        context = cast(av.AudioCodecContext, av.CodecContext.create(codec))
        context.format = self.sample_format = _pick_sample_format(codec, fmt.codec)
        _configure(context, fmt, rate, frame_samples, bitrate, complexity)
        context.open()
        self._context = context
        self.frame_samples = context.frame_size or frame_samples
        self.bytes_per_sample = _SAMPLE_WISE.get(fmt.codec)
        self._pts = 0
        self._emitted = 0

    def encode(self, frame: av.AudioFrame) -> list[Chunk]:
        frame.pts = self._pts
        self._pts += frame.samples
        return self._take(self._context.encode(frame))

    def emitted_samples(self) -> int:
        return self._emitted

    def close(self) -> list[Chunk]:
        return self._take(self._context.encode(None))

    def _take(self, packets: list[av.Packet]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for packet in packets:
            if packet.pts is not None and packet.duration:
                # Codecs with a delay (Opus, MP3) start at a negative pts: their priming.
                self._emitted = max(self._emitted, packet.pts + packet.duration)
            if packet.size:
                # A bare packet decodes to its whole duration (priming included): that is the
                # audio the client gets from it.
                chunks.append((bytes(packet), packet.duration or 0))
        return chunks


class _Pipe:
    """The muxer's output file: collects what it writes until the encoder takes it."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ContainerEncoder:
    """A codec inside a muxer (Ogg, WebM, ADTS, FLAC, WAV), writing to an in-memory pipe.

    Each call returns whatever the muxer has written: whole pages, clusters or frames, so a
    client that stops reading between two returned chunks still holds a valid stream.
    """

    sample_format: str
    frame_samples: int
    bytes_per_sample: int | None

    def __init__(self, fmt: OutputFormat, rate: int, frame_samples: int, *, bitrate: int, complexity: int) -> None:
        assert fmt.container is not None
        self._pipe = _Pipe()
        self._output = av.open(self._pipe, mode="w", format=fmt.container, options=dict(fmt.muxer_options))
        self._stream = cast(av.AudioStream, self._output.add_stream(fmt.codec, rate=rate, layout="mono"))
        context = self._stream.codec_context
        context.format = self.sample_format = _pick_sample_format(context.codec, fmt.codec)
        _configure(context, fmt, rate, frame_samples, bitrate, complexity)
        self._stream.time_base = Fraction(1, rate)
        self._lag = fmt.muxer_lag_frames
        # Opening the codec now fixes its frame size (and writes nothing yet).
        context.open()
        self.frame_samples = context.frame_size or frame_samples
        self.bytes_per_sample = None
        self._pts = 0
        self._muxed_ends: list[int] = []
        self._reported = 0
        self._closed = False

    def encode(self, frame: av.AudioFrame) -> list[Chunk]:
        frame.pts = self._pts
        self._pts += frame.samples
        self._mux(self._stream.encode(frame))
        return self._take()

    def emitted_samples(self) -> int:
        # The muxer holds its last `lag` packets back; what precedes them has been written.
        return self._muxed_ends[-(self._lag + 1)] if len(self._muxed_ends) > self._lag else 0

    def close(self) -> list[Chunk]:
        if self._closed:
            return []
        self._closed = True
        self._mux(self._stream.encode(None))
        self._output.close()
        self._lag = 0  # closed: everything has been written
        return self._take()

    def _take(self) -> list[Chunk]:
        data = self._pipe.take()
        emitted = max(0, self.emitted_samples())
        covered, self._reported = emitted - self._reported, emitted
        return [(data, covered)] if data else []

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if packet.pts is not None and packet.duration:
                self._muxed_ends.append(packet.pts + packet.duration)
                del self._muxed_ends[: -(self._lag + 1)]
            self._output.mux(packet)


def make_encoder(fmt: OutputFormat, rate: int, frame_samples: int, *, bitrate: int, complexity: int) -> Encoder:
    kind = ContainerEncoder if fmt.container else CodecEncoder
    return kind(fmt, rate, frame_samples, bitrate=bitrate, complexity=complexity)
