"""Tests of AudioPipeline: resampling, framing and encoding of synthetic sine input.

Input is a float32 sine pushed in random-sized chunks, like a provider would. The output is checked
for frame sizes, total duration and pitch: a dominant frequency off by the ratio of two rates
(e.g. 24000/22050, +8.8%) is the "chipmunk" bug of a mislabelled sample rate.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np
import pytest

from stream_server.audio import FORMATS, AudioPipeline, EncodedFrame, get_format
from stream_server.audio.formats import MAX_FRAME_MS, MIN_FRAME_MS, OPUS_FRAME_MS, PCM_RATES
from stream_server.providers.base import PcmChunk

INPUT_RATES = (22050, 24000)
FRAME_MS_CHOICES = (10, 20, 40)
TONE_HZ = 440.0
BITRATE = 32000
# libopus looks ahead 6.5 ms (312 samples at 48 kHz); a decoder without container info outputs
# them as leading samples, and the encoder's flush emits them in one last packet.
OPUS_DELAY_SAMPLES = 312


def sine(rate: int, seconds: float, freq: float = TONE_HZ) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chunks(samples: np.ndarray, rate: int, seed: int) -> Iterator[PcmChunk]:
    """`samples` cut at random points, from single samples to ~100 ms pieces."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(samples):
        size = int(rng.choice([1, rng.integers(2, 64), rng.integers(64, rate // 10)]))
        yield PcmChunk(samples[start : start + size], rate)
        start += size


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def pcm_samples(frames: list[EncodedFrame]) -> np.ndarray:
    return np.frombuffer(b"".join(f.data for f in frames), dtype="<i2")


def pipeline(fmt: str, rate: int, frame_ms: int) -> AudioPipeline:
    return AudioPipeline(FORMATS[fmt], rate, frame_ms, BITRATE)


def valid_pcm_combos() -> list[tuple[int, int, int]]:
    return [
        (in_rate, out_rate, frame_ms)
        for in_rate in INPUT_RATES
        for out_rate in PCM_RATES
        for frame_ms in FRAME_MS_CHOICES
        if FORMATS["pcm"].frame_ms_error(out_rate, frame_ms) is None
    ]


def test_every_pcm_rate_has_a_valid_frame_ms_under_test() -> None:
    assert {out for _, out, _ in valid_pcm_combos()} == set(PCM_RATES)
    assert (22050, 22050, 10) not in valid_pcm_combos()  # 220.5 samples: not a whole frame


# -- pcm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("in_rate", "out_rate", "frame_ms"), valid_pcm_combos())
def test_pcm_frames_duration_and_pitch(in_rate: int, out_rate: int, frame_ms: int) -> None:
    signal = sine(in_rate, 0.737)
    audio = pipeline("pcm", out_rate, frame_ms)
    frame_bytes = out_rate * frame_ms // 1000 * 2

    pushed: list[EncodedFrame] = []
    for chunk in chunks(signal, in_rate, seed=out_rate + frame_ms):
        pushed += audio.push(chunk)
    last = audio.end_segment()
    tail = audio.finish()

    # Every frame but the segment's last is exactly frame_ms.
    assert pushed
    for frame in pushed:
        assert len(frame.data) == frame_bytes
        assert frame.duration_ms == pytest.approx(frame_ms)
    assert len(last) <= 1
    for frame in last + tail:
        assert 0 < len(frame.data) <= frame_bytes
        assert len(frame.data) % 2 == 0
    # After finish(), the resampler's last few samples: at most one partial frame.
    assert all(len(f.data) == frame_bytes for f in tail[:-1])

    everything = pushed + last + tail
    for frame in everything:
        assert frame.duration_ms == pytest.approx(1000 * len(frame.data) / 2 / out_rate)

    samples = pcm_samples(everything)
    input_ms = 1000 * len(signal) / in_rate
    assert 1000 * len(samples) / out_rate == pytest.approx(input_ms, abs=1.0)
    assert sum(f.duration_ms for f in everything) == pytest.approx(input_ms, abs=1.0)

    assert dominant_hz(samples, out_rate) == pytest.approx(TONE_HZ, rel=0.02)
    # The level survives too (0.5 full scale, give or take the resampler's edges).
    assert 0.4 * 32767 < np.abs(samples).max() < 0.6 * 32767


@pytest.mark.parametrize("in_rate", INPUT_RATES)
def test_pcm_segments_each_end_with_their_own_short_frame(in_rate: int) -> None:
    audio = pipeline("pcm", 16000, 20)
    frame_bytes = 16000 * 20 // 1000 * 2
    total_in = 0
    out: list[EncodedFrame] = []
    for seq, seconds in enumerate((0.3037, 0.5111, 0.1)):
        signal = sine(in_rate, seconds, freq=300.0 + 100 * seq)
        total_in += len(signal)
        pushed: list[EncodedFrame] = []
        for chunk in chunks(signal, in_rate, seed=seq):
            pushed += audio.push(chunk)
        assert all(len(f.data) == frame_bytes for f in pushed)
        last = audio.end_segment()
        assert len(last) == 1 and len(last[0].data) < frame_bytes  # these lengths leave a remainder
        assert audio.end_segment() == []  # nothing left to cut
        out += pushed + last
    out += audio.finish()
    assert audio.finish() == []  # idempotent
    assert 1000 * len(pcm_samples(out)) / 16000 == pytest.approx(1000 * total_in / in_rate, abs=1.0)


def test_pcm_same_rate_is_bit_exact_passthrough() -> None:
    signal = sine(24000, 0.25)
    audio = pipeline("pcm", 24000, 20)
    frames: list[EncodedFrame] = []
    for chunk in chunks(signal, 24000, seed=1):
        frames += audio.push(chunk)
    frames += audio.end_segment() + audio.finish()
    expected = np.round(signal * 32767).astype(np.int16)
    got = pcm_samples(frames)
    assert len(got) == len(expected)
    assert np.abs(got.astype(np.int32) - expected).max() <= 1


def test_pcm_empty_segment_gives_no_frames() -> None:
    audio = pipeline("pcm", 24000, 20)
    assert audio.end_segment() == []
    assert audio.finish() == []


# -- opus ---------------------------------------------------------------------------------------


def opus_decoder(name: str) -> av.CodecContext:
    decoder = av.CodecContext.create(name, "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    return decoder


def decode_packets(frames: list[EncodedFrame], decoder_name: str) -> list[np.ndarray]:
    """One array of samples per packet, in order."""
    decoder = opus_decoder(decoder_name)
    out = []
    for frame in frames:
        decoded = decoder.decode(av.Packet(frame.data))
        for d in decoded:
            assert d.sample_rate == 48000
            assert d.layout.nb_channels == 1
        out.append(np.concatenate([d.to_ndarray().reshape(-1) for d in decoded]) if decoded else np.zeros(0))
    return out


@pytest.mark.parametrize("decoder_name", ["libopus", "opus"])
@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
@pytest.mark.parametrize("in_rate", INPUT_RATES)
def test_opus_packets_duration_and_pitch(in_rate: int, frame_ms: int, decoder_name: str) -> None:
    signal = sine(in_rate, 0.737)
    audio = pipeline("opus", 48000, frame_ms)
    frame_samples = 48 * frame_ms

    frames: list[EncodedFrame] = []
    for chunk in chunks(signal, in_rate, seed=frame_ms):
        frames += audio.push(chunk)
    tail = audio.finish()
    assert tail  # the partial frame, padded, and the codec's delayed samples
    frames += tail

    packets = decode_packets(frames, decoder_name)
    for frame, pcm in zip(frames, packets, strict=True):
        assert frame.duration_ms == frame_ms
        assert len(pcm) == frame_samples

    decoded = np.concatenate(packets)
    input_samples = len(signal) * 48000 / in_rate
    # Nothing lost: every input sample plus the codec delay comes out ...
    assert len(decoded) >= input_samples + OPUS_DELAY_SAMPLES
    # ... plus at most one padded frame and one packet carrying the codec delay.
    assert len(decoded) <= input_samples + frame_samples + max(frame_samples, OPUS_DELAY_SAMPLES)

    assert dominant_hz(decoded, 48000) == pytest.approx(TONE_HZ, rel=0.02)


@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
def test_opus_segment_end_pads_to_a_full_frame(frame_ms: int) -> None:
    audio = pipeline("opus", 48000, frame_ms)
    frames: list[EncodedFrame] = []
    total_in = 0
    for seq, seconds in enumerate((0.3037, 0.1111)):
        signal = sine(24000, seconds)
        total_in += len(signal) * 2
        for chunk in chunks(signal, 24000, seed=seq):
            frames += audio.push(chunk)
        last = audio.end_segment()
        assert all(f.duration_ms == frame_ms for f in last)
        frames += last
        assert audio.end_segment() == []
    frames += audio.finish()

    packets = decode_packets(frames, "libopus")
    assert [len(p) for p in packets] == [48 * frame_ms] * len(frames)
    assert all(f.duration_ms == frame_ms for f in frames)
    decoded = sum(len(p) for p in packets)
    assert decoded >= total_in + OPUS_DELAY_SAMPLES
    # One padded frame per segment end and at the end of the stream, and the delay packet.
    assert decoded <= total_in + 4 * 48 * frame_ms


def test_opus_short_segment_still_gives_a_packet() -> None:
    audio = pipeline("opus", 48000, 20)
    frames = audio.push(PcmChunk(sine(24000, 0.005), 24000)) + audio.end_segment()
    frames += audio.finish()
    assert frames
    assert all(len(p) == 960 for p in decode_packets(frames, "libopus"))


# -- OutputFormat.frame_ms_error ----------------------------------------------------------------


def test_formats_registry() -> None:
    assert get_format("pcm") is FORMATS["pcm"]
    assert get_format("opus") is FORMATS["opus"]
    assert get_format("wav") is None
    assert FORMATS["opus"].sample_rates == (48000,)
    assert FORMATS["opus"].pad_last_frame and not FORMATS["pcm"].pad_last_frame


@pytest.mark.parametrize("frame_ms", OPUS_FRAME_MS)
def test_opus_frame_ms_choices_are_valid(frame_ms: int) -> None:
    assert FORMATS["opus"].frame_ms_error(48000, frame_ms) is None


@pytest.mark.parametrize("frame_ms", [5, 15, 25, 30, 100])
def test_opus_other_frame_ms_are_rejected_with_the_choices(frame_ms: int) -> None:
    error = FORMATS["opus"].frame_ms_error(48000, frame_ms)
    assert error is not None
    assert "[10, 20, 40, 60]" in error


def test_pcm_frame_ms_not_whole_samples() -> None:
    error = FORMATS["pcm"].frame_ms_error(22050, 7)
    assert error is not None
    assert "7 ms" in error and "22050" in error
    assert FORMATS["pcm"].frame_ms_error(22050, 20) is None  # 441 samples
    assert FORMATS["pcm"].frame_ms_error(22050, 10) is not None  # 220.5 samples
    assert FORMATS["pcm"].frame_ms_error(16000, 7) is None  # 112 samples


@pytest.mark.parametrize("frame_ms", [MIN_FRAME_MS - 1, 0, MAX_FRAME_MS + 1, 300])
def test_pcm_frame_ms_out_of_range(frame_ms: int) -> None:
    error = FORMATS["pcm"].frame_ms_error(48000, frame_ms)
    assert error is not None
    assert str(MIN_FRAME_MS) in error and str(MAX_FRAME_MS) in error


@pytest.mark.parametrize("frame_ms", [MIN_FRAME_MS, MAX_FRAME_MS])
def test_pcm_frame_ms_range_is_inclusive(frame_ms: int) -> None:
    assert FORMATS["pcm"].frame_ms_error(48000, frame_ms) is None
