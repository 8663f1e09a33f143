"""What every stream of a run asks for (provider, voice, format...), and how long a frame lasts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Bytes per sample of the raw formats, whose frames are exactly their samples.
_SAMPLE_BYTES = {"pcm": 2, "f32": 4, "mulaw": 1, "alaw": 1}


@dataclass(frozen=True, slots=True)
class StreamSpec:
    provider: str = "tone"
    voice: str | None = None
    format: str = "pcm"
    sample_rate: int | None = None
    frame_ms: int | None = None
    max_lead_ms: int | None = None
    """None: the server's default pacing."""
    timestamps: str | None = None
    """"word" or "char": the streams ask for `alignment` messages (their cost is what is measured)."""

    def config_fields(self) -> dict[str, Any]:
        """As URL query parameters / a session's JSON body: only what is set."""
        fields: dict[str, Any] = {"provider": self.provider, "format": self.format}
        for name in ("voice", "sample_rate", "frame_ms", "max_lead_ms", "timestamps"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields


def frame_duration_ms(ready: dict[str, Any], frame_bytes: int) -> float:
    """Duration of one WebSocket binary frame, from the stream's `ready` settings.

    Exact for the raw sample formats and `opus` (one packet of `frame_ms`); for the containers and
    codec streams (mp3, ogg_opus...) a frame is counted as `frame_ms`, an approximation.
    """
    sample_bytes = _SAMPLE_BYTES.get(str(ready.get("format")))
    if sample_bytes is not None:
        return frame_bytes / sample_bytes / int(ready["sample_rate"]) * 1000.0
    return float(ready.get("frame_ms") or 20)
