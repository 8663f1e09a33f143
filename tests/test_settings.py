"""Tests of the settings loader: defaults, environment, command line, validation, and the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from stream_server.__main__ import load_server_settings
from stream_server.providers import provider_default_voice
from stream_server.settings import Settings, SettingsError


def load(*argv: str, **env: str) -> Settings:
    """Settings from `argv` over an environment holding only `env` (never the real one), checked as
    the server checks them at start-up (the stream defaults against the formats too)."""
    return load_server_settings(list(argv), env)


# -- sources and precedence ---------------------------------------------------------------------


def test_defaults_with_empty_argv_and_environment() -> None:
    settings = load()
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.providers == ("piper", "tone")
    assert settings.provider == "piper"
    assert settings.voice is None
    assert settings.format == "pcm"
    assert settings.sample_rate is None
    assert settings.frame_ms == 20
    assert settings.ring_ms == 2000
    assert settings.piper.voices == ()
    assert settings.log_level == "info"


def test_environment_sets_values_converted_to_their_types() -> None:
    settings = load(
        STREAM_SERVER_PORT="9001",
        STREAM_SERVER_HOST="0.0.0.0",
        STREAM_SERVER_RING_MS="500",
        STREAM_SERVER_LOG_LEVEL="debug",
        STREAM_SERVER_SAMPLE_RATE="16000",
        STREAM_SERVER_API_KEYS="k1,k2",
    )
    assert settings.api_keys == ("k1", "k2")
    assert settings.port == 9001
    assert settings.host == "0.0.0.0"
    assert settings.ring_ms == 500
    assert settings.log_level == "debug"
    assert settings.sample_rate == 16000


def test_unprefixed_or_unrelated_variables_are_ignored() -> None:
    assert load(PORT="1", STREAM_SERVER_BOGUS="x").port == 8000


def test_command_line_sets_values() -> None:
    settings = load("--port", "9002", "--frame-ms", "40", "--max-segment-chars", "120")
    assert (settings.port, settings.frame_ms, settings.max_segment_chars) == (9002, 40, 120)


def test_command_line_wins_over_environment() -> None:
    settings = load("--port", "9100", STREAM_SERVER_PORT="9200", STREAM_SERVER_RING_MS="700")
    assert settings.port == 9100
    assert settings.ring_ms == 700  # not on the command line: the environment still applies


def test_providers_comma_separated_in_environment() -> None:
    settings = load(STREAM_SERVER_PROVIDERS="tone", STREAM_SERVER_PROVIDER="tone")
    assert settings.providers == ("tone",)
    assert settings.provider == "tone"


def test_piper_voices_repeated_on_command_line() -> None:
    settings = load("--piper-voices", "a.onnx", "--piper-voices", "/models/b.onnx")
    assert settings.piper.voices == ("a.onnx", "/models/b.onnx")


def test_piper_voices_comma_separated_in_environment() -> None:
    settings = load(STREAM_SERVER_PIPER_VOICES="a.onnx,/models/b.onnx,")
    assert settings.piper.voices == ("a.onnx", "/models/b.onnx")


def test_piper_voices_command_line_replaces_environment_list() -> None:
    settings = load("--piper-voices", "cli.onnx", STREAM_SERVER_PIPER_VOICES="env1.onnx,env2.onnx")
    assert settings.piper.voices == ("cli.onnx",)


# -- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "option", "variable"),
    [
        (["--port", "notaport"], {}, "--port", "STREAM_SERVER_PORT"),
        ([], {"STREAM_SERVER_PORT": "70000"}, "--port", "STREAM_SERVER_PORT"),
        ([], {"STREAM_SERVER_RING_MS": "50"}, "--ring-ms", "STREAM_SERVER_RING_MS"),
        (["--ring-ms", "60001"], {}, "--ring-ms", "STREAM_SERVER_RING_MS"),
        (["--log-level", "loud"], {}, "--log-level", "STREAM_SERVER_LOG_LEVEL"),
        (["--providers", "espeak"], {}, "--providers", "STREAM_SERVER_PROVIDERS"),
        ([], {"STREAM_SERVER_PROVIDERS": "tone,espeak"}, "--providers", "STREAM_SERVER_PROVIDERS"),
        (["--providers", "tone"], {}, "--provider", "STREAM_SERVER_PROVIDER"),
        (["--providers", "tone", "--provider", "piper"], {}, "--provider", "STREAM_SERVER_PROVIDER"),
        (["--frame-ms", "4"], {}, "--frame-ms", "STREAM_SERVER_FRAME_MS"),
        (["--format", "wave"], {}, "--format", "STREAM_SERVER_FORMAT"),
        (["--sample-rate", "12345"], {}, "--sample-rate", "STREAM_SERVER_SAMPLE_RATE"),
        (["--format", "opus", "--frame-ms", "25"], {}, "--frame-ms", "STREAM_SERVER_FRAME_MS"),
        ([], {"STREAM_SERVER_SAMPLE_RATE": "22050", "STREAM_SERVER_FRAME_MS": "7"}, "--frame-ms", "STREAM_SERVER_FRAME_MS"),
    ],
)
def test_bad_value_names_option_and_variable(
    argv: list[str], env: dict[str, str], option: str, variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_server_settings(argv, env)
    message = str(caught.value)
    # Whole names only: "--providers" must not pass for "--provider".
    assert re.search(rf"{option}(?![\w-])", message), message
    assert re.search(rf"{variable}(?!\w)", message), message


def test_bad_value_message_says_what_is_wrong() -> None:
    with pytest.raises(SettingsError, match="100"):  # the bound that was violated
        load(STREAM_SERVER_RING_MS="50")
    with pytest.raises(SettingsError, match="loud"):
        load("--log-level", "loud")
    with pytest.raises(SettingsError, match="not loaded"):
        load("--providers", "tone")


def test_consistent_format_defaults_are_accepted() -> None:
    settings = load("--format", "opus", "--frame-ms", "60")
    assert (settings.format, settings.frame_ms) == ("opus", 60)
    assert load("--sample-rate", "16000", "--frame-ms", "7").frame_ms == 7  # 112 samples


def test_default_provider_error_mentions_loaded_providers() -> None:
    with pytest.raises(SettingsError) as caught:
        load(STREAM_SERVER_PROVIDERS="tone", STREAM_SERVER_PROVIDER="piper")
    assert "'piper'" in str(caught.value)
    assert "tone" in str(caught.value)


def test_unknown_default_format_is_rejected_at_start_up() -> None:
    with pytest.raises(SettingsError, match="--format"):
        load("--format", "wave")


# -- the command itself -------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAM_SERVER_")},
    )


def test_help_documents_options_and_environment() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--provider", "--providers", "--piper-voices"):
        assert option in result.stdout
    assert "STREAM_SERVER_" in result.stdout
    assert "STREAM_SERVER_PORT" in result.stdout


def test_bad_value_exits_2_naming_the_option_without_traceback() -> None:
    result = run_cli("--port", "notaport")
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "STREAM_SERVER_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_list_settings_split_on_commas_on_the_command_line_too() -> None:
    argv = ["--providers", "tone,piper", "--piper-voices", "a.onnx,b.onnx", "--piper-voices", "c.onnx"]
    settings = load_server_settings(argv, {})
    assert settings.providers == ("tone", "piper")
    assert settings.piper.voices == ("a.onnx", "b.onnx", "c.onnx")


def test_a_public_address_without_keys_is_refused_unless_insecure_is_explicit() -> None:
    with pytest.raises(SettingsError) as refused:
        load("--host", "0.0.0.0")
    assert "--insecure-no-auth" in str(refused.value) and "loopback" in str(refused.value)
    # A bare flag means true; the explicit value form works too.
    assert load("--host", "0.0.0.0", "--insecure-no-auth").insecure_no_auth is True
    assert load("--host", "192.0.2.7", "--insecure-no-auth", "true").host == "192.0.2.7"
    assert load("--host", "0.0.0.0", "--api-keys-file", "/etc/keys").api_keys_file == "/etc/keys"
    for loopback in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        assert load("--host", loopback).host == loopback


def test_api_keys_never_appear_in_the_settings_repr() -> None:
    settings = load("--api-keys", "sk-secret-one,sk-secret-two")
    assert "sk-secret" not in repr(settings) and "api_keys='***'" in repr(settings)


def test_a_providers_options_fill_its_own_settings_nested_under_its_name() -> None:
    settings = load("--openai-api-key", "sk-secret", "--openai-voice", "coral", STREAM_SERVER_PIPER_WORKERS="3")
    assert (settings.openai.api_key, settings.openai.voice, settings.piper.workers) == ("sk-secret", "coral", 3)
    assert provider_default_voice(settings, "openai") == "coral"
    assert provider_default_voice(settings, "piper") is None  # Piper's first voice is its default
    assert "openai_api_key='***'" in repr(settings)
    assert "sk-secret" not in repr(settings) and "sk-secret" not in repr(settings.openai)
