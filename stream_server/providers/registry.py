"""Which providers exist, and how each is built from the settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..settings import Settings
from .base import Provider



def _piper(settings: Settings) -> Provider:
    from .piper import PiperProvider, default_model_path

    paths = [default_model_path(), *(Path(p) for p in settings.piper_voices)]
    return PiperProvider(paths, workers=settings.piper_workers, intra_op_threads=settings.piper_intra_op_threads)


def _tone(settings: Settings) -> Provider:
    from .tone import ToneProvider

    return ToneProvider()


def _openai(settings: Settings) -> Provider:
    from .openai import OpenAIProvider

    return OpenAIProvider.from_settings(settings)


def _gemini(settings: Settings) -> Provider:
    from .gemini import GeminiProvider

    return GeminiProvider.from_settings(settings)


def _ttsai(settings: Settings) -> Provider:
    from .ttsai import TTSAIProvider

    return TTSAIProvider.from_settings(settings)


_BUILDERS: dict[str, Callable[[Settings], Provider]] = {
    "piper": _piper,
    "tone": _tone,
    "openai": _openai,
    "gemini": _gemini,
    "ttsai": _ttsai,
}
PROVIDER_NAMES = tuple(_BUILDERS)


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Load every provider named in `settings.providers` (Piper loads its models here)."""
    return {name: _BUILDERS[name](settings) for name in settings.providers}
