"""The output formats a stream can ask for, and what each allows."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..media import OUTPUT_FORMAT_NAMES

PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
TELEPHONY_RATES = (8000,)
OPUS_RATES = (48000,)
# libopus accepts these frame durations (2.5 and 5 ms exist too, but are not whole ms).
OPUS_FRAME_MS = (10, 20, 40, 60)
MIN_FRAME_MS = 5
MAX_FRAME_MS = 200


@dataclass(frozen=True, slots=True)
class OutputFormat:
    name: str
    codec: str
    """PyAV (FFmpeg) encoder name."""
    container: str | None
    """PyAV muxer name, or None for a bare codec stream (raw samples or packets)."""
    sample_rates: tuple[int, ...]
    mime: str
    frame_ms_choices: tuple[int, ...] | None = None
    """None: any whole number of ms in [MIN_FRAME_MS, MAX_FRAME_MS] giving whole samples;
    (): the codec fixes its own frame size and `frame_ms` does not apply."""
    pad_last_frame: bool = False
    """The codec takes only whole frames: a segment's last frame is padded with silence."""
    muxer_options: dict[str, str] = field(default_factory=dict)
    muxer_lag_frames: int = 0
    """Frames the muxer holds before writing a packet out (WebM closes a cluster at the next)."""
    encoded_off_loop: bool = False
    """Encoding is slow enough to run in the encode threads (MP3, AAC: over 1 ms of CPU per 200 ms
    slice). The others are encoded on the event loop: handing each slice to a thread costs more
    (the hop, and the GIL passed back and forth) than encoding it, ~40 % of the server's CPU
    for Opus under load (BENCHMARKS.md)."""

    @property
    def frames_are_packets(self) -> bool:
        """Each binary frame is one codec frame of `frame_ms` (raw formats), not container bytes."""
        return self.container is None and self.frame_ms_choices != ()

    def frame_ms_error(self, sample_rate: int, frame_ms: int) -> str | None:
        if self.frame_ms_choices == ():
            return None
        if self.frame_ms_choices is not None:
            if frame_ms not in self.frame_ms_choices:
                return f"{self.name} frames must be one of {list(self.frame_ms_choices)} ms"
            return None
        if not MIN_FRAME_MS <= frame_ms <= MAX_FRAME_MS:
            return f"frame_ms must be between {MIN_FRAME_MS} and {MAX_FRAME_MS}"
        if sample_rate * frame_ms % 1000:
            return f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples"
        return None


# Muxers write to a pipe that cannot seek: size fields stay "streaming" (WAV's 0xFFFFFFFF),
# `flush_packets` hands every packet's bytes over at once, and `bitexact` keeps encoder tags
# (WAV's LIST chunk) out of the header.
_STREAMING = {"flush_packets": "1", "fflags": "+bitexact"}

_FORMATS = (
    OutputFormat("pcm", "pcm_s16le", None, PCM_RATES, "audio/L16"),
    OutputFormat("f32", "pcm_f32le", None, PCM_RATES, "audio/x-f32le"),
    OutputFormat("mulaw", "pcm_mulaw", None, TELEPHONY_RATES, "audio/basic"),
    OutputFormat("alaw", "pcm_alaw", None, TELEPHONY_RATES, "audio/x-alaw-basic"),
    OutputFormat("opus", "libopus", None, OPUS_RATES, "audio/opus", OPUS_FRAME_MS, pad_last_frame=True),
    OutputFormat(
        "ogg_opus",
        "libopus",
        "ogg",
        OPUS_RATES,
        "audio/ogg; codecs=opus",
        OPUS_FRAME_MS,
        pad_last_frame=True,
        # One page per packet: a page is sent as soon as its packet exists (the default is 1 s).
        muxer_options={**_STREAMING, "page_duration": "1"},
    ),
    OutputFormat(
        "webm_opus",
        "libopus",
        "webm",
        OPUS_RATES,
        "audio/webm; codecs=opus",
        OPUS_FRAME_MS,
        pad_last_frame=True,
        # Live mode (no cues, no seeking back) and one cluster per packet, for MediaSource.
        muxer_options={**_STREAMING, "live": "1", "cluster_time_limit": "1"},
        muxer_lag_frames=1,
    ),
    OutputFormat("mp3", "libmp3lame", None, PCM_RATES, "audio/mpeg", (), pad_last_frame=True, encoded_off_loop=True),
    OutputFormat(
        "aac", "aac", "adts", PCM_RATES, "audio/aac", (), pad_last_frame=True, muxer_options=_STREAMING,
        encoded_off_loop=True,
    ),
    OutputFormat("flac", "flac", "flac", PCM_RATES, "audio/flac", pad_last_frame=True, muxer_options=_STREAMING),
    OutputFormat("wav", "pcm_s16le", "wav", PCM_RATES, "audio/wav", muxer_options=_STREAMING),
)

FORMATS: dict[str, OutputFormat] = {f.name: f for f in _FORMATS}
# The settings name formats by media.OUTPUT_FORMAT_NAMES: the two lists must not drift apart.
if tuple(FORMATS) != OUTPUT_FORMAT_NAMES:
    raise RuntimeError("media.OutputFormatName and audio.formats list different formats")


def get_format(name: str) -> OutputFormat | None:
    return FORMATS.get(name)
