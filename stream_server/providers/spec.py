"""What a provider declares about itself, so that the registry's one line is all it takes to add it.

Each provider module ends with a `SPEC`: its name, what it can do (for GET /v1/models), its own
settings (a `ProviderSettings` struct whose fields the settings loader offers as
`--<name>-<field>` and `STREAM_SERVER_<NAME>_<FIELD>`), how it is built from them, and which of
them names its default voice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from .base import Provider


def masked_repr(type_name: str, values: Iterable[tuple[str, object]]) -> str:
    """`Name(field=value, ...)`, with keys only as set or not: settings may be printed or logged."""

    def shown(field: str, value: object) -> str:
        # A Redis URL may carry a password.
        secret = field in ("api_keys", "redis_url") or field.endswith("api_key")
        return "'***'" if secret and value else repr(value)

    return f"{type_name}({', '.join(f'{field}={shown(field, value)}' for field, value in values)})"


FIRST_AUDIO_BUDGET = (
    "Seconds from a segment's request to its first audio: one budget for waiting for a request slot, "
    "every retry and the back-off between them; then the fallback provider or provider_timeout."
)
"""The description of every cloud provider's `timeout_s` (--<name>-timeout-s)."""


class ProviderSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of a provider's own settings. Fields carry their help text in `Meta(description=...)`."""

    def __repr__(self) -> str:
        return masked_repr(type(self).__name__, msgspec.structs.asdict(self).items())


@dataclass(frozen=True, slots=True)
class SharedHttpSettings:
    """What every cloud provider shares (the top-level --http-* and --breaker-* settings)."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    """Between two pieces of an answer once it streams."""
    retries: int = 2
    """Of a segment, before any of its audio."""
    breaker_failures: int = 5
    """Failed segments in a row that open a provider's circuit breaker."""
    breaker_cooldown_s: float = 30.0


S = TypeVar("S", bound=ProviderSettings)


def no_default_voice(settings: Any) -> str | None:
    """For providers without a voice setting: their first voice is the default."""
    return None


@dataclass(frozen=True, slots=True)
class ProviderSpec(Generic[S]):
    name: str
    """The provider's name in --providers and a stream's config, and the prefix of its options."""
    capabilities: Mapping[str, object]
    """For GET /v1/models: how it streams (audio as it is made), whether it runs locally..."""
    settings_type: type[S]
    build: Callable[[S, SharedHttpSettings], Provider]
    """Loads the provider (Piper loads its models here) from its settings and the shared ones."""
    default_voice: Callable[[S], str | None] = no_default_voice
    """The voice its settings name as the default (a fallback provider speaks with it)."""
