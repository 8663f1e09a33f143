"""Where `say` writes the audio, and what it asks the server for so that a file plays.

A file is always a playable file of the type its extension names: with `pcm` (the default) the
client encodes it here (audio_file.py says why); a server format that is itself a stream of that
container (`mp3` for .mp3, `ogg_opus` for .ogg/.opus, …) is written as it comes; raw Opus packets
asked for a container file are asked as the server's container of Opus instead. Raw bytes (PCM
samples, G.711, Opus packets) go only to stdout or to a file with a raw extension.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .audio_file import CONTAINERS, PcmFileWriter
from .messages import Ready

RAW_SUFFIXES = (".raw", ".pcm", ".ulaw", ".mulaw", ".alaw", ".f32")
# The server formats whose stream is a file of these extensions.
STREAMED_CONTAINERS = {
    "wav": (".wav",),
    "flac": (".flac",),
    "mp3": (".mp3",),
    "aac": (".aac",),
    "ogg_opus": (".ogg", ".opus"),
    "webm_opus": (".webm",),
}
# Formats without a container, by the container of the same codec the server streams.
CONTAINED_AS = {"opus": {".ogg": "ogg_opus", ".opus": "ogg_opus", ".webm": "webm_opus"}}


class UsageError(Exception):
    pass


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _BinarySink:
    """The server's bytes as they come."""

    def __init__(self, target: BinaryIO, close_target: bool) -> None:
        self._target = target
        self._close_target = close_target

    def write(self, data: bytes) -> None:
        self._target.write(data)
        self._target.flush()  # a player on the other end of a pipe should hear it now

    def close(self) -> None:
        if self._close_target:
            self._target.close()


@dataclass(frozen=True)
class OutputPlan:
    path: Path | None
    """None: stdout."""
    server_format: str
    """The format to ask the server for."""
    encode_here: bool
    """Encode PCM into the container of the file's extension (audio_file.py says why)."""

    def open(self, ready: Ready) -> Sink:
        if self.path is None:
            return _BinarySink(sys.stdout.buffer, close_target=False)
        if self.encode_here:
            return PcmFileWriter(self.path, ready.sample_rate)
        return _BinarySink(self.path.open("wb"), close_target=True)


def plan_output(out: str | None, audio_format: str, stdout_is_tty: bool) -> OutputPlan:
    if out is None:
        if stdout_is_tty:
            raise UsageError("stdout is a terminal: give --out FILE, or pipe the audio into a player")
        out = "-"
    if out == "-":
        return OutputPlan(path=None, server_format=audio_format, encode_here=False)
    path = Path(out)
    if not path.parent.is_dir():
        raise UsageError(f"no such directory: {path.parent}")
    suffix = path.suffix.lower()
    if suffix in RAW_SUFFIXES:
        return OutputPlan(path=path, server_format=audio_format, encode_here=False)
    if suffix not in CONTAINERS:
        raise UsageError(f"cannot tell the file type of {out}: use {', '.join(CONTAINERS)}, or .raw for raw bytes")
    if audio_format == "pcm":
        return OutputPlan(path=path, server_format="pcm", encode_here=True)
    if suffix in STREAMED_CONTAINERS.get(audio_format, ()):
        return OutputPlan(path=path, server_format=audio_format, encode_here=False)
    if contained := CONTAINED_AS.get(audio_format, {}).get(suffix):
        return OutputPlan(path=path, server_format=contained, encode_here=False)
    raise UsageError(
        f"--format {audio_format} does not make a {suffix} file: leave out --format (the file is encoded "
        f"here), or write the raw stream to a .raw file or stdout"
    )
