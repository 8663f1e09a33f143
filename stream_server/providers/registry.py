"""The providers this server knows: one spec each. Adding a provider is its module and a line here.

Everything that lists providers derives from `PROVIDER_SPECS`: the names --providers accepts,
the settings nested under each name (and so the --<name>-* options), /v1/models' capabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from . import gemini, openai, piper, tone, ttsai
from .base import Provider
from .spec import ProviderSettings, ProviderSpec, SharedHttpSettings

PROVIDER_SPECS: tuple[ProviderSpec[Any], ...] = (piper.SPEC, tone.SPEC, openai.SPEC, gemini.SPEC, ttsai.SPEC)

SPECS_BY_NAME: dict[str, ProviderSpec[Any]] = {spec.name: spec for spec in PROVIDER_SPECS}
PROVIDER_NAMES = tuple(SPECS_BY_NAME)
ProviderName = Literal[PROVIDER_NAMES]  # type: ignore[valid-type]  # derived: the names are listed once
CAPABILITIES: dict[str, dict[str, object]] = {spec.name: dict(spec.capabilities) for spec in PROVIDER_SPECS}
"""What each provider can do, for GET /v1/models (streams audio as it is made, runs locally...)."""


class ConfiguredProviders(Protocol):
    """What the registry reads of the server's `Settings` (which nests each provider's settings
    under its name, and so imports this module: hence a protocol, not the class)."""

    @property
    def providers(self) -> Sequence[str]: ...

    @property
    def shared_http(self) -> SharedHttpSettings: ...

    def provider_settings(self, name: str) -> ProviderSettings: ...


def build_providers(settings: ConfiguredProviders) -> dict[str, Provider]:
    """Load every provider named in `settings.providers` (Piper loads its models here)."""
    shared = settings.shared_http
    return {name: SPECS_BY_NAME[name].build(settings.provider_settings(name), shared) for name in settings.providers}


def provider_default_voice(settings: ConfiguredProviders, name: str) -> str | None:
    """The voice provider `name`'s own settings name as its default (--openai-voice...), if any."""
    return SPECS_BY_NAME[name].default_voice(settings.provider_settings(name))
