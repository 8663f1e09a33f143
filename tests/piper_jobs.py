"""Watching Piper's single inference worker from a test: which segment's job starts when.

A job starts by phonemizing its segment on the worker thread; `JobLog` records that text, and
holds the worker on one chosen segment until the test releases it, so that other jobs queue
behind it and the test can check the order the scheduler gives them (never a duration). The word
timings then phonemize each written word alone in the same job: one word, no space, which the
log leaves out (the tests' segments are sentences).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from piper import PiperVoice

from stream_server.providers.piper_chunked import ChunkedModel


class JobLog:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: str, timeout_s: float) -> None:
        """`hold`: the segment whose job keeps the worker until `release` is set."""
        self.started: list[str] = []
        self.release = threading.Event()
        original = PiperVoice.phonemize

        def phonemize(voice: PiperVoice, text: str) -> list[list[str]]:
            if " " in text:
                self.started.append(text)
            if text == hold:
                assert self.release.wait(timeout_s), "the test never released the worker"
            return original(voice, text)

        monkeypatch.setattr(PiperVoice, "phonemize", phonemize)
        self.windows = 0
        """Decoder windows run: a chunked voice's jobs, one each."""
        decode = ChunkedModel.decode

        def counted_decode(model: ChunkedModel, latent: np.ndarray) -> np.ndarray:
            self.windows += 1
            return decode(model, latent)

        monkeypatch.setattr(ChunkedModel, "decode", counted_decode)
