"""Tests of a stream's effective options: the client's config over the server defaults, validated."""

from __future__ import annotations

from typing import Any

import pytest

from stream_server.audio import FORMATS
from stream_server.protocol import Config, ErrorCode, ProtocolError
from stream_server.providers.base import VoiceInfo
from stream_server.providers.tone import SAMPLE_RATE as TONE_RATE
from stream_server.providers.tone import ToneProvider
from stream_server.session.options import StreamOptions, config_from_query, ready_message, resolve_options
from stream_server.settings import Settings

PROVIDERS = {"tone": ToneProvider()}
SETTINGS = Settings(providers=("tone",), provider="tone")


def resolve(settings: Settings = SETTINGS, **requested: Any) -> StreamOptions:
    return resolve_options(Config(**requested), settings, PROVIDERS)


def error_of(settings: Settings = SETTINGS, **requested: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        resolve(settings, **requested)
    return caught.value


# -- defaults -----------------------------------------------------------------------------------


def test_defaults() -> None:
    options = resolve()
    assert options == StreamOptions(
        provider="tone",
        voice="beep",
        format=FORMATS["pcm"],
        sample_rate=24000,
        frame_ms=20,
        speed=1.0,
        provider_timestamps=True,  # the tone provider times its words
    )
    assert options.channels == 1
    assert options.timestamps == "none"


def test_default_voice_is_the_providers_first_voice() -> None:
    first = PROVIDERS["tone"].voices[0].id
    assert resolve().voice == first
    assert first == "beep"


def test_server_default_voice_applies_to_the_default_provider() -> None:
    settings = Settings(providers=("tone",), provider="tone", voice="low")
    assert resolve(settings).voice == "low"
    assert resolve(settings, voice="beep").voice == "beep"  # the client's choice wins


def test_server_defaults_are_used() -> None:
    settings = Settings(providers=("tone",), provider="tone", sample_rate=16000, frame_ms=40)
    options = resolve(settings)
    assert (options.sample_rate, options.frame_ms) == (16000, 40)


def test_requested_values_win_over_server_defaults() -> None:
    settings = Settings(providers=("tone",), provider="tone", sample_rate=16000, frame_ms=40)
    options = resolve(settings, voice="low", sample_rate=8000, frame_ms=10, speed=1.5)
    assert (options.voice, options.sample_rate, options.frame_ms, options.speed) == ("low", 8000, 10, 1.5)


def test_pcm_default_rate_is_the_voice_rate() -> None:
    assert TONE_RATE == 24000
    assert resolve(format="pcm").sample_rate == TONE_RATE


class FixedRateProvider(ToneProvider):
    """The tone provider's interface with a single voice at another rate."""

    def __init__(self, rate: int) -> None:
        super().__init__()
        self._voices = (VoiceInfo(id="v", sample_rate=rate, language="en"),)


@pytest.mark.parametrize(("voice_rate", "expected"), [(22050, 22050), (16000, 16000), (11025, 24000)])
def test_pcm_default_rate_follows_the_voice_or_falls_back(voice_rate: int, expected: int) -> None:
    providers = {"tone": FixedRateProvider(voice_rate)}
    options = resolve_options(Config(format="pcm"), SETTINGS, providers)
    assert options.sample_rate == expected  # 11025 Hz is not offered: the 24000 Hz fallback


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_pcm_requested_rate_is_kept(rate: int) -> None:
    assert resolve(format="pcm", sample_rate=rate).sample_rate == rate


def test_opus_forces_48000() -> None:
    options = resolve(format="opus")
    assert options.format is FORMATS["opus"]
    assert options.sample_rate == 48000


def test_opus_ignores_a_pcm_server_default_rate() -> None:
    settings = Settings(providers=("tone",), provider="tone", sample_rate=16000)
    assert resolve(settings, format="opus").sample_rate == 48000


def test_opus_as_server_default_format() -> None:
    settings = Settings(providers=("tone",), provider="tone", format="opus")
    options = resolve(settings)
    assert (options.format.name, options.sample_rate) == ("opus", 48000)


def test_opus_accepts_48000_when_asked() -> None:
    assert resolve(format="opus", sample_rate=48000).sample_rate == 48000


# -- errors -------------------------------------------------------------------------------------


def test_unknown_provider() -> None:
    error = error_of(provider="piper")
    assert error.code == ErrorCode.UNKNOWN_PROVIDER
    assert "'piper'" in error.message and "tone" in error.message


def test_unknown_voice_lists_the_voices() -> None:
    error = error_of(voice="nobody")
    assert error.code == ErrorCode.UNKNOWN_VOICE
    assert "'nobody'" in error.message
    assert "beep" in error.message and "low" in error.message


def test_unknown_server_default_voice_is_unknown_voice() -> None:
    settings = Settings(providers=("tone",), provider="tone", voice="nobody")
    assert error_of(settings).code == ErrorCode.UNKNOWN_VOICE


def test_unsupported_format() -> None:
    error = error_of(format="wave")
    assert error.code == ErrorCode.UNSUPPORTED_FORMAT
    assert "'wave'" in error.message


@pytest.mark.parametrize("rate", [12345, 11025, 96000])
def test_unsupported_pcm_rate(rate: int) -> None:
    error = error_of(format="pcm", sample_rate=rate)
    assert error.code == ErrorCode.UNSUPPORTED_SAMPLE_RATE
    assert str(rate) in error.message


def test_opus_at_another_rate_is_unsupported() -> None:
    error = error_of(format="opus", sample_rate=24000)
    assert error.code == ErrorCode.UNSUPPORTED_SAMPLE_RATE
    assert "48000" in error.message


@pytest.mark.parametrize(
    ("requested", "fragment"),
    [
        ({"format": "opus", "frame_ms": 25}, "[10, 20, 40, 60]"),
        ({"format": "pcm", "sample_rate": 22050, "frame_ms": 7}, "22050"),
        ({"format": "pcm", "sample_rate": 22050, "frame_ms": 10}, "22050"),
        ({"format": "pcm", "frame_ms": 300}, "200"),
        ({"format": "pcm", "frame_ms": 4}, "5"),
    ],
)
def test_bad_frame_ms(requested: dict[str, Any], fragment: str) -> None:
    error = error_of(**requested)
    assert error.code == ErrorCode.BAD_FRAME_MS
    assert fragment in error.message


def test_server_default_frame_ms_falls_back_where_it_does_not_fit() -> None:
    settings = Settings(providers=("tone",), provider="tone", frame_ms=7)
    assert resolve(settings, sample_rate=16000).frame_ms == 7  # 112 samples: fine
    # 7 ms is 154.35 samples at 22050 Hz, and no opus frame size: the format's 20 ms instead.
    assert resolve(settings, sample_rate=22050).frame_ms == 20
    assert resolve(settings, format="opus").frame_ms == 20
    # Asked for explicitly, a frame that does not fit is an error, not a silent change.
    assert error_of(settings, sample_rate=22050, frame_ms=7).code == ErrorCode.BAD_FRAME_MS


# -- query parameters ---------------------------------------------------------------------------


def test_query_strings_are_converted() -> None:
    config = config_from_query(
        {"provider": "tone", "voice": "low", "format": "pcm", "sample_rate": "16000", "frame_ms": "40", "speed": "1.5"}
    )
    assert config == Config(provider="tone", voice="low", format="pcm", sample_rate=16000, frame_ms=40, speed=1.5)
    options = resolve_options(config, SETTINGS, PROVIDERS)
    assert (options.voice, options.sample_rate, options.frame_ms, options.speed) == ("low", 16000, 40, 1.5)


def test_emoji_are_skipped_unless_the_client_asks_to_read_them() -> None:
    assert resolve().emoji == "skip"
    assert resolve(emoji="read").emoji == "read"
    assert resolve_options(config_from_query({"emoji": "read"}), SETTINGS, PROVIDERS).emoji == "read"
    assert ready_message(resolve(emoji="read")).emoji == "read"


def test_empty_query_is_an_empty_config() -> None:
    assert config_from_query({}) == Config()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sample_rate": "abc"}, "sample_rate"),
        ({"sample_rate": "-16000"}, "sample_rate"),
        ({"frame_ms": "twenty"}, "frame_ms"),
        ({"speed": "9"}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"volume": "3"}, "volume"),
        ({"type": "text"}, "type"),
        ({"emoji": "sing"}, "emoji"),
    ],
)
def test_bad_query_value_is_bad_message(params: dict[str, str], field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        config_from_query(params)
    assert caught.value.code == ErrorCode.BAD_MESSAGE
    assert "query parameters" in caught.value.message
    assert field in caught.value.message
