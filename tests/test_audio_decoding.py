"""Tests of the incremental decoders for what cloud TTS providers send (stream_server.providers.decoding).

Test audio is made here, in memory, with PyAV: one second of two sines (440 Hz dominant) at 24 and
44.1 kHz, mono and stereo, encoded into every format. The reference is PyAV's ordinary whole-file
decode (its demuxer); the decoders under test are fed the same bytes in seeded random chunks, down
to one byte, and must give the same audio: same length (to the sample: codec delay and padding are
trimmed as FFmpeg's demuxers do), same signal, and most of it before the last byte has arrived.

Corruption policy under test: strict -- detectable corruption raises DecodeError at once (no
skipping), a truncated end raises it from close().
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from functools import cache

import av
import numpy as np
import pytest

from stream_server.providers.decoding import (
    DecodeError,
    StreamingDecoder,
    decoder_for_mime,
    open_decoder,
    parse_mime,
)
from stream_server.media import PcmChunk

SECONDS = 1.0
TONE_HZ = 440.0


def make_signal(rate: int, channels: int, seconds: float = SECONDS) -> np.ndarray:
    """(channels, samples) float32: 440 Hz dominant in every channel, 1 kHz beside it."""
    t = np.arange(round(rate * seconds)) / rate
    tone, high = np.sin(2 * np.pi * TONE_HZ * t), np.sin(2 * np.pi * 1000.0 * t)
    rows = [0.5 * tone + 0.2 * high, 0.4 * tone - 0.3 * high][:channels]
    return np.array(rows, dtype=np.float32)


@dataclass(frozen=True)
class Case:
    id: str
    decoder: str  # the name given to open_decoder
    container: str  # PyAV's muxer
    codec: str
    rate: int
    channels: int
    lossless: bool
    muxer_options: tuple[tuple[str, str], ...] = ()
    codec_options: tuple[tuple[str, str], ...] = ()
    decoder_args: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    incremental: bool = True


# The Ogg muxer's pages hold 1 s by default; streaming encoders flush a page per packet or so.
SMALL_PAGES = (("page_duration", "20000"),)
# FFmpeg's FLAC muxer writes 8 KiB of padding into the header by default.
NO_PADDING = (("metadata_header_padding", "0"),)

CASES = [
    Case("pcm-24k-mono", "pcm", "s16le", "pcm_s16le", 24000, 1, True),
    Case("pcm-8k-mono", "pcm", "s16le", "pcm_s16le", 8000, 1, True, decoder_args={"sample_rate": 8000}),
    Case(
        "pcm-44k-stereo", "pcm", "s16le", "pcm_s16le", 44100, 2, True, decoder_args={"sample_rate": 44100, "channels": 2}
    ),
    Case("wav-s16-24k-mono", "wav", "wav", "pcm_s16le", 24000, 1, True),
    Case("wav-s16-44k-stereo", "wav", "wav", "pcm_s16le", 44100, 2, True),
    Case("wav-f32-24k-mono", "wav", "wav", "pcm_f32le", 24000, 1, True),
    Case("wav-s24-extensible-44k-stereo", "wav", "wav", "pcm_s24le", 44100, 2, True),
    Case("wav-mulaw-8k-mono", "wav", "wav", "pcm_mulaw", 8000, 1, True),
    Case("mp3-24k-mono", "mp3", "mp3", "libmp3lame", 24000, 1, False),
    Case("mp3-44k-stereo", "mp3", "mp3", "libmp3lame", 44100, 2, False),
    Case("aac-24k-mono", "aac", "adts", "aac", 24000, 1, False),
    Case("aac-44k-stereo", "aac", "adts", "aac", 44100, 2, False),
    Case("flac-24k-mono", "flac", "flac", "flac", 24000, 1, True, NO_PADDING),
    Case("flac-44k-stereo", "flac", "flac", "flac", 44100, 2, True),  # with the 8 KiB of padding
    Case("opus-24k-mono", "ogg_opus", "ogg", "libopus", 24000, 1, False, SMALL_PAGES),
    Case("opus-48k-stereo", "opus", "ogg", "libopus", 48000, 2, False, SMALL_PAGES),
    # FFmpeg's native Vorbis encoder: setup headers of several KB, so little comes out by half-way.
    Case(
        "vorbis-44k-stereo", "ogg", "ogg", "vorbis", 44100, 2, False, SMALL_PAGES, (("strict", "experimental"),),
        incremental=False,
    ),
]
BY_ID = {case.id: case for case in CASES}


@cache
def encoded(case: Case, seconds: float = SECONDS) -> bytes:
    """The test signal encoded by PyAV into the case's format, in memory."""
    layout = "mono" if case.channels == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format=case.container, options=dict(case.muxer_options)) as out:
        stream = out.add_stream(case.codec, rate=case.rate, layout=layout)
        stream.codec_context.options = dict(case.codec_options)
        sample_format = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(make_signal(case.rate, case.channels, seconds), format="fltp", layout=layout)
        frame.sample_rate = case.rate
        fifo = av.AudioFifo()
        for converted in av.AudioResampler(format=sample_format, layout=layout, rate=case.rate).resample(frame):
            fifo.write(converted)
        frame_size = stream.codec_context.frame_size or 1024
        pts = 0
        while (piece := fifo.read(frame_size) or fifo.read()) is not None:
            piece.pts = pts
            pts += piece.samples
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@cache
def reference(case: Case) -> tuple[np.ndarray, int]:
    """Whole-file decode by PyAV's demuxer: (mono samples, rate)."""
    options = {}
    if case.container == "s16le":
        options = {"sample_rate": str(case.rate), "ch_layout": "mono" if case.channels == 1 else "stereo"}
    with av.open(io.BytesIO(encoded(case)), format=case.container, options=options) as container:
        frames = list(container.decode(audio=0))
    resampler = av.AudioResampler(format="fltp")  # float planes, channels kept: averaged here
    pieces = [f.to_ndarray().mean(axis=0) for frame in frames for f in resampler.resample(frame)]
    return np.concatenate(pieces).astype(np.float32), frames[0].sample_rate


@dataclass
class Fed:
    chunks: list[PcmChunk]
    at_half: int  # samples out once half of the bytes were fed

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks]) if self.chunks else np.zeros(0, np.float32)


def feed_randomly(decoder: StreamingDecoder, data: bytes, seed: int, max_chunk: int) -> Fed:
    """`data` in chunks of 1..max_chunk bytes (a third of them single bytes), then close()."""
    rng = np.random.default_rng(seed)
    chunks: list[PcmChunk] = []
    at_half = None
    pos = 0
    while pos < len(data):
        size = 1 if rng.random() < 1 / 3 else int(rng.integers(1, max_chunk + 1))
        chunks += decoder.feed(data[pos : pos + size])
        pos += size
        if at_half is None and pos >= len(data) // 2:
            at_half = sum(len(c.samples) for c in chunks)
    chunks += decoder.close()
    return Fed(chunks, at_half or 0)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def check_against_reference(case: Case, fed: Fed) -> None:
    ref, ref_rate = reference(case)
    assert fed.chunks
    for chunk in fed.chunks:
        assert chunk.sample_rate == ref_rate
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1 and len(chunk.samples)
        assert np.abs(chunk.samples).max() <= 1.0
    out = fed.samples
    # To the sample, not merely within a codec frame: codec delay and padding are trimmed exactly
    # as FFmpeg's demuxers trim them (MP3's LAME tag, Opus's pre-skip and end granule position).
    assert len(out) == len(ref), (len(out), len(ref))
    assert np.corrcoef(out, ref)[0, 1] > 0.999
    assert abs(dominant_hz(out, ref_rate) - TONE_HZ) < 3
    if case.lossless:  # the very same samples
        np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_random_chunks_decode_like_the_whole_file(case: Case) -> None:
    data = encoded(case)
    fed = feed_randomly(open_decoder(case.decoder, **case.decoder_args), data, seed=len(data), max_chunk=2000)
    check_against_reference(case, fed)
    if case.incremental:
        # Audio comes out while the bytes arrive: by half of them, well over a quarter of it.
        assert fed.at_half >= 0.3 * len(reference(case)[0]), (fed.at_half, len(reference(case)[0]))


# Small streams: raw PCM and WAV cost one PyAV decode call per sample when fed a byte at a time.
ONE_BYTE_CASES = ["pcm-8k-mono", "wav-mulaw-8k-mono", "mp3-24k-mono", "aac-24k-mono", "flac-24k-mono", "opus-24k-mono"]


@pytest.mark.parametrize("case_id", ONE_BYTE_CASES)
def test_one_byte_at_a_time(case_id: str) -> None:
    case = BY_ID[case_id]
    data = encoded(case)
    decoder = open_decoder(case.decoder, **case.decoder_args)
    chunks: list[PcmChunk] = []
    at_half = 0
    for i in range(len(data)):
        chunks += decoder.feed(data[i : i + 1])
        if i == len(data) // 2:
            at_half = sum(len(c.samples) for c in chunks)
    chunks += decoder.close()
    check_against_reference(case, Fed(chunks, at_half))
    assert at_half >= 0.3 * len(reference(case)[0])


def test_pcm_samples_are_exact_and_rate_is_passed_through() -> None:
    samples = np.array([0, 1, -1, 16384, -16384, 32767, -32768], dtype="<i2")
    decoder = open_decoder("l16", sample_rate=16000)
    chunks = decoder.feed(samples.tobytes()[:5]) + decoder.feed(samples.tobytes()[5:]) + decoder.close()
    out = np.concatenate([c.samples for c in chunks])
    np.testing.assert_array_equal(out, samples / np.float32(32768))
    assert {c.sample_rate for c in chunks} == {16000}


def test_pcm_defaults_to_openai_24k_mono() -> None:
    chunks = open_decoder("pcm").feed(b"\x00\x40" * 10)
    assert chunks[0].sample_rate == 24000 and len(chunks[0].samples) == 10


def test_stereo_is_averaged_to_mono() -> None:
    left_right = np.array([[16384, -16384], [8192, 8192], [32767, 32767]], dtype="<i2")  # (samples, channels)
    chunks = open_decoder("pcm", sample_rate=8000, channels=2).feed(left_right.tobytes())
    np.testing.assert_allclose(chunks[0].samples, [0.0, 0.25, 32767 / 32768], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# MIME types


@pytest.mark.parametrize(
    ("mime", "fmt", "rate", "channels"),
    [
        ("audio/L16;codec=pcm;rate=24000", "pcm", 24000, 1),
        ("audio/l16; rate=16000; channels=2", "pcm", 16000, 2),
        ('audio/pcm; rate="44100"', "pcm", 44100, 1),
        ("audio/mpeg", "mp3", None, None),
        ("audio/mp3", "mp3", None, None),
        ("Audio/MPEG", "mp3", None, None),
        ("audio/wav", "wav", None, None),
        ("audio/x-wav", "wav", None, None),
        ("audio/ogg", "ogg", None, None),
        ("audio/ogg; codecs=opus", "ogg", None, None),
        ("audio/opus", "ogg", None, None),
        ("audio/aac", "aac", None, None),
        ("audio/flac", "flac", None, None),
    ],
)
def test_decoder_for_mime(mime: str, fmt: str, rate: int | None, channels: int | None) -> None:
    decoder = decoder_for_mime(mime)
    assert decoder.format == fmt
    if fmt == "pcm":
        chunks = decoder.feed(b"\x00\x00" * 2 * (channels or 1))
        assert chunks[0].sample_rate == rate and len(chunks[0].samples) == 2


def test_l16_rate_can_come_from_the_caller() -> None:
    assert decoder_for_mime("audio/L16", sample_rate=22050).feed(b"\0\0")[0].sample_rate == 22050
    assert decoder_for_mime("audio/L16;rate=8000", sample_rate=22050).feed(b"\0\0")[0].sample_rate == 8000


def test_parse_mime() -> None:
    assert parse_mime("audio/L16;codec=pcm;rate=24000") == ("audio/l16", {"codec": "pcm", "rate": "24000"})
    assert parse_mime(" audio/ogg ; Codecs=\"opus\" ") == ("audio/ogg", {"codecs": "opus"})


@pytest.mark.parametrize(
    "mime",
    ["audio/x-foo", "video/mp4", "audio/webm", "audio/mp4", "", "audio/L16", "audio/L16;rate=fast",
     "audio/L16;rate=0", "audio/ogg; codecs=flac"],
)
def test_unknown_or_incomplete_mime_types_raise(mime: str) -> None:
    with pytest.raises(DecodeError):
        decoder_for_mime(mime)


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [("m4a", {}), ("", {}), ("pcm", {"sample_rate": 0}), ("pcm", {"channels": 0}), ("l16", {"sample_rate": 10**7})],
)
def test_unknown_formats_and_bad_parameters_raise(fmt: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(DecodeError):
        open_decoder(fmt, **kwargs)


# --------------------------------------------------------------------------------------------------
# Corrupt, truncated and unusual streams

COMPRESSED = ["mp3-24k-mono", "aac-24k-mono", "flac-24k-mono", "opus-24k-mono"]


def decode_all(decoder: StreamingDecoder, data: bytes, chunk: int = 500) -> list[PcmChunk]:
    out: list[PcmChunk] = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i : i + chunk])
    return out + decoder.close()


@pytest.mark.parametrize("fmt", ["wav", "mp3", "aac", "flac", "ogg"])
def test_garbage_is_not_taken_for_audio(fmt: str) -> None:
    garbage = np.random.default_rng(7).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    with pytest.raises(DecodeError):
        decode_all(open_decoder(fmt), garbage)


@pytest.mark.parametrize(
    ("case_id", "wrong"), [("mp3-24k-mono", "wav"), ("wav-s16-24k-mono", "ogg"), ("opus-24k-mono", "flac")]
)
def test_another_format_is_refused(case_id: str, wrong: str) -> None:
    with pytest.raises(DecodeError):
        decode_all(open_decoder(wrong), encoded(BY_ID[case_id]))


@pytest.mark.parametrize("case_id", COMPRESSED)
@pytest.mark.parametrize("seed", [1, 2])
def test_corruption_mid_stream_raises_and_the_decoder_stays_failed(case_id: str, seed: int) -> None:
    """Policy: strict. Corruption that FFmpeg or the framing detects raises at once, no skipping."""
    case = BY_ID[case_id]
    data = bytearray(encoded(case))
    middle = len(data) // 2
    data[middle : middle + 256] = np.random.default_rng(seed).integers(0, 256, 256, dtype=np.uint8).tobytes()
    decoder = open_decoder(case.decoder)
    good: list[PcmChunk] = []
    with pytest.raises(DecodeError):
        for i in range(0, len(data), 100):
            good += decoder.feed(bytes(data[i : i + 100]))
        decoder.close()
    assert sum(len(c.samples) for c in good) > 0.25 * len(reference(case)[0])  # what came before stays
    with pytest.raises(DecodeError):
        decoder.feed(b"\0" * 100)


@pytest.mark.parametrize("case_id", COMPRESSED + ["wav-s16-24k-mono", "pcm-24k-mono"])
def test_truncated_stream_raises_at_close(case_id: str) -> None:
    case = BY_ID[case_id]
    data = encoded(case)
    cut = len(data) * 2 // 3 + 1  # odd: inside a PCM sample too
    decoder = open_decoder(case.decoder)
    chunks = decoder.feed(data[:cut])
    assert chunks
    with pytest.raises(DecodeError, match="truncated"):
        decoder.close()


@pytest.mark.parametrize("case_id", ["flac-24k-mono", "opus-24k-mono", "mp3-24k-mono", "wav-s16-24k-mono"])
def test_stream_cut_inside_its_header_raises_at_close(case_id: str) -> None:
    decoder = open_decoder(BY_ID[case_id].decoder)
    assert decoder.feed(encoded(BY_ID[case_id])[:20]) == []
    with pytest.raises(DecodeError):
        decoder.close()


def test_ogg_cut_at_a_page_boundary_is_truncated_too() -> None:
    data = encoded(BY_ID["opus-24k-mono"])
    last_page = data.rindex(b"OggS")
    decoder = open_decoder("ogg")
    assert decoder.feed(data[:last_page])
    with pytest.raises(DecodeError, match="end-of-stream"):
        decoder.close()


def test_ogg_missing_page_raises() -> None:
    data = encoded(BY_ID["opus-24k-mono"])
    pages = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    start, end = pages[10], pages[11]
    with pytest.raises(DecodeError, match="missing"):
        decode_all(open_decoder("ogg"), data[:start] + data[end:])


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF])
def test_streaming_wav_with_unknown_sizes_decodes_to_the_end(placeholder: int) -> None:
    case = BY_ID["wav-s16-24k-mono"]
    data = bytearray(encoded(case))
    data_chunk = data.index(b"data")
    declared = struct.unpack_from("<I", data, data_chunk + 4)[0]
    struct.pack_into("<I", data, 4, placeholder)
    struct.pack_into("<I", data, data_chunk + 4, placeholder)
    body_end = data_chunk + 8 + declared
    streamed = bytes(data[:body_end])  # streaming writers cannot append chunks after the data
    fed = feed_randomly(open_decoder("wav"), streamed, seed=3, max_chunk=999)
    check_against_reference(case, fed)
    # Without a size, a stream that stops at a sample boundary is complete.
    chunks = decode_all(open_decoder("wav"), streamed[: body_end - 1000])
    assert sum(len(c.samples) for c in chunks) == len(reference(case)[0]) - 500


def test_wav_chunks_after_the_data_are_ignored() -> None:
    case = BY_ID["wav-s16-24k-mono"]
    data = encoded(case)
    trailer = b"LIST" + struct.pack("<I", 10) + b"INFOxxxxyy" + b"id3 " + struct.pack("<I", 3) + b"abc\0"
    fed = feed_randomly(open_decoder("wav"), data + trailer, seed=4, max_chunk=500)
    check_against_reference(case, fed)


def test_mp3_id3v1_tag_at_the_end_is_skipped() -> None:
    case = BY_ID["mp3-24k-mono"]
    tag = b"TAG" + b"Title".ljust(30, b"\0") + b"\0" * 95
    fed = feed_randomly(open_decoder("mp3"), encoded(case) + tag, seed=5, max_chunk=300)
    check_against_reference(case, fed)


def test_chained_ogg_streams_play_one_after_the_other() -> None:
    first, second = BY_ID["opus-24k-mono"], BY_ID["opus-48k-stereo"]
    fed = feed_randomly(open_decoder("ogg"), encoded(first) + encoded(second), seed=6, max_chunk=700)
    assert len(fed.samples) == len(reference(first)[0]) + len(reference(second)[0])


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "aac", "flac", "ogg"])
def test_empty_stream_is_empty_audio(fmt: str) -> None:
    decoder = open_decoder(fmt)
    assert decoder.feed(b"") == []
    assert decoder.close() == []
    assert decoder.close() == []  # idempotent
    with pytest.raises(RuntimeError):
        decoder.feed(b"\0")


@pytest.mark.parametrize("case_id", ["opus-24k-mono", "flac-44k-stereo", "wav-s16-44k-stereo", "pcm-24k-mono"])
def test_memory_stays_bounded_over_a_long_stream(case_id: str) -> None:
    """Ten seconds or more, fed in small chunks: no buffer grows beyond a page or a frame."""
    case = BY_ID[case_id]
    data = encoded(case)
    if case.decoder == "wav":  # a streaming WAV: data size unknown, samples keep coming
        header_end = data.index(b"data") + 8
        stream = data[: header_end - 4] + b"\xff\xff\xff\xff" + data[header_end:] * 10
    elif case.decoder == "flac":
        stream = encoded(case, seconds=10.0)
    else:  # Ogg: ten chained streams; PCM: ten times the samples
        stream = data * 10
    decoder = open_decoder(case.decoder)
    largest = 0
    samples = 0
    for i in range(0, len(stream), 997):
        samples += sum(len(c.samples) for c in decoder.feed(stream[i : i + 997]))
        largest = max(largest, len(getattr(decoder, "_buf", b"")))
    samples += sum(len(c.samples) for c in decoder.close())
    assert samples >= 9.9 * len(reference(case)[0])
    assert largest < 70_000  # at most an Ogg page (<= 65,307 bytes) or a FLAC frame, plus a chunk


@pytest.mark.parametrize("fmt", ["mp3", "aac", "flac", "ogg", "wav"])
def test_silence_bytes_are_not_taken_for_audio(fmt: str) -> None:
    with pytest.raises(DecodeError):
        decode_all(open_decoder(fmt), b"\0" * 100_000)


def test_flac_missing_frame_raises() -> None:
    data = encoded(BY_ID["flac-24k-mono"])
    frames = [m.start() for m in re.finditer(b"\xff\xf8", data)]  # false syncs are rare enough here
    start, end = frames[3], frames[4]
    with pytest.raises(DecodeError, match="corrupt FLAC"):
        decode_all(open_decoder("flac"), data[:start] + data[end:])


def test_wav_with_a_compressed_codec_is_refused() -> None:
    data = bytearray(encoded(BY_ID["wav-s16-24k-mono"]))
    struct.pack_into("<H", data, data.index(b"fmt ") + 8, 0x0055)  # WAVE_FORMAT_MPEGLAYER3
    with pytest.raises(DecodeError, match="only PCM"):
        decode_all(open_decoder("wav"), bytes(data))
