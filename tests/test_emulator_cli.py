"""The cloud emulators as a newcomer runs them: `python -m loadtest.emulators NAME` says where it
listens, the key it expects and the settings that point the server at it, and those settings work."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running(command: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


def server_port(server: subprocess.Popen[str]) -> int:
    assert server.stderr is not None
    for line in server.stderr:
        if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", json.loads(line)["event"]):
            return int(match.group(1))
    raise AssertionError("the server never said where it listens")


def test_help_shows_the_expected_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.emulators", "openai", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "(default: test-key)" in " ".join(result.stdout.split())


@pytest.mark.parametrize("provider", ["openai", "gemini", "ttsai"])
def test_the_settings_an_emulator_prints_make_the_server_speak_with_it(provider: str) -> None:
    with running([sys.executable, "-m", "loadtest.emulators", provider, "--port", "0"]) as emulator:
        assert emulator.stdout is not None
        listening, _, command = (emulator.stdout.readline() for _ in range(3))
        url = re.search(r"listening on (http://\S+), expecting the API key 'test-key'", listening)
        assert url, listening
        *assignments, python, _, module = shlex.split(command)
        assert (python, module) == (".venv/bin/python", "stream_server")
        settings = dict(assignment.split("=", 1) for assignment in assignments)
        assert settings[f"STREAM_SERVER_{provider.upper()}_BASE_URL"] == url.group(1)

        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_SERVER_")} | settings
        with running([sys.executable, "-m", "stream_server", "--port", "0"], env) as server:
            port = server_port(server)
            response = httpx.post(
                f"http://127.0.0.1:{port}/v1/audio/speech",
                json={"model": "tts-1", "voice": "alloy", "input": "Hello there.", "response_format": "wav"},
                timeout=30,
            )
    assert response.status_code == 200, response.text
    assert len(response.content) > 44 + 8000, "the emulator's speech, not an empty stream"
