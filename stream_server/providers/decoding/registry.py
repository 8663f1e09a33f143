"""Format names and MIME types, and the decoder each one opens."""

from __future__ import annotations

from collections.abc import Callable

from .base import DecodeError, StreamingDecoder
from .elementary import ElementaryDecoder
from .flac import FlacDecoder
from .ogg import OggDecoder
from .pcm_wav import PcmDecoder, WavDecoder

PCM_DEFAULT_RATE = 24000
"""OpenAI's ``pcm`` response format: 24 kHz s16le mono."""

FORMAT_ALIASES: dict[str, str] = {
    "pcm": "pcm",
    "l16": "pcm",
    "s16le": "pcm",
    "wav": "wav",
    "wave": "wav",
    "mp3": "mp3",
    "mpeg": "mp3",
    "aac": "aac",
    "adts": "aac",
    "flac": "flac",
    "ogg": "ogg",
    "ogg_opus": "ogg",
    "opus": "ogg",
    "ogg_vorbis": "ogg",
    "vorbis": "ogg",
}

_MIME_FORMATS: dict[str, str] = {
    "audio/l16": "pcm",
    "audio/pcm": "pcm",
    "audio/x-pcm": "pcm",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/x-pn-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/x-mpeg": "mp3",
    "audio/x-mp3": "mp3",
    "audio/mpga": "mp3",
    "audio/aac": "aac",
    "audio/aacp": "aac",
    "audio/x-aac": "aac",
    "audio/vnd.dlna.adts": "aac",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "application/ogg": "ogg",
    "audio/x-ogg": "ogg",
}

# Every format but raw PCM, which takes its rate and channels from the caller.
_FACTORIES: dict[str, Callable[[], StreamingDecoder]] = {
    "wav": WavDecoder,
    "mp3": lambda: ElementaryDecoder("mp3", ("mp3float", "mp3")),
    "aac": lambda: ElementaryDecoder("aac", ("aac",)),
    "flac": FlacDecoder,
    "ogg": OggDecoder,
}


def parse_mime(mime: str) -> tuple[str, dict[str, str]]:
    """``"audio/L16; codec=pcm; rate=24000"`` -> ``("audio/l16", {"codec": "pcm", "rate": "24000"})``."""
    essence, *params = mime.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = value.strip().strip('"').strip()
    return essence.strip().lower(), parsed


def open_decoder(fmt: str, *, sample_rate: int | None = None, channels: int = 1) -> StreamingDecoder:
    """A decoder for `fmt` (see FORMAT_ALIASES; case-insensitive).

    `sample_rate` and `channels` describe raw PCM only (default: PCM_DEFAULT_RATE, mono); every
    other format carries its own and ignores them.
    """
    name = FORMAT_ALIASES.get(fmt.strip().lower())
    if name is None:
        raise DecodeError(f"unknown audio format {fmt!r}; known: {', '.join(sorted(FORMAT_ALIASES))}")
    if name == "pcm":
        rate = PCM_DEFAULT_RATE if sample_rate is None else sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 768000:
            raise DecodeError(f"bad PCM sample rate {sample_rate!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 16:
            raise DecodeError(f"bad PCM channel count {channels!r}")
        return PcmDecoder(rate, channels)
    return _FACTORIES[name]()


def decoder_for_mime(mime: str, *, sample_rate: int | None = None) -> StreamingDecoder:
    """A decoder for a Content-Type such as ``audio/L16;codec=pcm;rate=24000`` or ``audio/mpeg``.

    Raw PCM (``audio/L16``, ``audio/pcm``) takes its rate from the ``rate`` parameter (else
    `sample_rate`; one of them is required: guessing a rate would play audio at the wrong pitch)
    and its channel count from ``channels`` (default 1). Like Gemini, and unlike RFC 2586, L16 is
    taken to be little-endian. Unknown types raise DecodeError.
    """
    essence, params = parse_mime(mime)
    name = _MIME_FORMATS.get(essence)
    if name is None:
        raise DecodeError(f"unsupported audio type {mime!r}")
    if name == "ogg":
        codecs = params.get("codecs", "").lower()
        if codecs and not {c.strip() for c in codecs.split(",")} <= {"opus", "vorbis"}:
            raise DecodeError(f"unsupported Ogg codec in {mime!r}: only Opus and Vorbis")
    if name != "pcm":
        return open_decoder(name)
    raw_rate = params.get("rate") or params.get("samplerate") or params.get("sample_rate")
    try:
        rate = int(raw_rate) if raw_rate is not None else sample_rate
        channels = int(params.get("channels", "1"))
    except ValueError:
        raise DecodeError(f"bad PCM parameters in {mime!r}") from None
    if rate is None:
        raise DecodeError(f"{mime!r} does not say its sample rate (a 'rate' parameter)")
    return open_decoder("pcm", sample_rate=rate, channels=channels)
