"""Watching Piper's single inference worker from a test: which segment's job starts when.

A job starts by phonemizing its segment on the worker thread; `JobLog` records that text, and
holds the worker on one chosen segment until the test releases it, so that other jobs queue
behind it and the test can check the order the scheduler gives them (never a duration).
"""

from __future__ import annotations

import threading

import pytest
from piper import PiperVoice


class JobLog:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: str, timeout_s: float) -> None:
        """`hold`: the segment whose job keeps the worker until `release` is set."""
        self.started: list[str] = []
        self.release = threading.Event()
        original = PiperVoice.phonemize

        def phonemize(voice: PiperVoice, text: str) -> list[list[str]]:
            self.started.append(text)
            if text == hold:
                assert self.release.wait(timeout_s), "the test never released the worker"
            return original(voice, text)

        monkeypatch.setattr(PiperVoice, "phonemize", phonemize)
