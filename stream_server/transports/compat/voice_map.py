"""A vendor's voice (or model) ids mapped onto this server's voices: the `--<vendor>-voice-map`
settings, `id=provider:voice` or `id=voice` (a voice of the default provider)."""

from __future__ import annotations

from functools import lru_cache

Target = tuple[str | None, str | None]
"""(provider, voice); None where the entry leaves it to the defaults."""


@lru_cache(maxsize=8)  # one entry per vendor's setting: parsed once, not per request
def voice_map(pairs: tuple[str, ...]) -> dict[str, Target]:
    mapping: dict[str, Target] = {}
    for pair in pairs:
        vendor_id, _, target = pair.partition("=")
        provider, _, voice = target.rpartition(":")
        mapping[vendor_id] = (provider or None, voice or None)
    return mapping
