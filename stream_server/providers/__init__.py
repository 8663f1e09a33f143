"""Speech providers behind one interface (`base.Provider`), built from the settings at start-up."""

from ..media import PcmChunk
from .base import Provider, ProviderError, VoiceInfo, VoiceOptions
from .registry import CAPABILITIES, PROVIDER_NAMES, build_providers, provider_default_voice

__all__ = [
    "CAPABILITIES",
    "PROVIDER_NAMES",
    "PcmChunk",
    "Provider",
    "ProviderError",
    "VoiceInfo",
    "VoiceOptions",
    "build_providers",
    "provider_default_voice",
]
