"""The README's set-up commands are the ones CI runs, and the server starts the way it says."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    serve, test = readme_commands()[:2]
    assert "python -m stream_server" in serve
    assert test in ci.splitlines()


def test_the_server_runs_from_the_command_line_with_settings_from_the_environment() -> None:
    env = {**os.environ, "STREAM_SERVER_PROVIDERS": "tone", "STREAM_SERVER_PROVIDER": "tone"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_server", "--port", "0", "--frame-ms", "40"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        assert process.stderr is not None
        for line in process.stderr:
            event = json.loads(line)["event"]  # every log line is JSON
            if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", event):
                port = int(match.group(1))
                break
        assert port, "the server never said where it listens"
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health["status"] == "ok" and list(health["providers"]) == ["tone"]
        with connect(f"ws://127.0.0.1:{port}/v1/tts/stream") as ws:
            ready = json.loads(ws.recv())
            assert (ready["provider"], ready["frame_ms"]) == ("tone", 40)
            ws.send(json.dumps({"type": "text", "text": "Hi there."}))
            ws.send(json.dumps({"type": "end"}))
            kinds = []
            for message in ws:
                if isinstance(message, str):
                    kinds.append(json.loads(message)["type"])
            assert kinds == ["segment", "segment_end", "done"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, rest = process.communicate(timeout=20)
        finally:
            process.kill()
    # uvicorn shuts down gracefully, then re-raises SIGINT so the parent sees why it ended.
    assert process.returncode in (0, -signal.SIGINT)
    assert "Application shutdown complete." in rest


@pytest.mark.parametrize("setting", [["--port", "notaport"], ["--provider", "tone", "--providers", "piper"]])
def test_a_bad_setting_stops_the_server_with_a_clear_message(setting: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream_server", *setting], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--" in result.stderr and "STREAM_SERVER_" in result.stderr
    assert "Traceback" not in result.stderr
