"""Speech providers behind one interface (`base.Provider`), built from the settings at start-up."""

from ..media import PcmChunk
from .base import Provider, ProviderError, VoiceInfo, VoiceOptions
from .registry import PROVIDER_NAMES, build_providers

__all__ = [
    "PROVIDER_NAMES",
    "PcmChunk",
    "Provider",
    "ProviderError",
    "VoiceInfo",
    "VoiceOptions",
    "build_providers",
]
