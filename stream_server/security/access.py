"""The server's access state, made once from the settings: its keys, token issuer and limits."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings
from .keys import KeyStore
from .limits import ClientLimits, KeyDefaults
from .tokens import TokenIssuer


@dataclass
class Access:
    keys: KeyStore
    tokens: TokenIssuer
    limits: ClientLimits
    max_connections: int
    connections: int = 0
    """HTTP requests and WebSockets open now (health endpoints are not counted)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Raises `KeyStoreError` when the keys file is unreadable or malformed."""
        return cls(
            keys=KeyStore.load(settings.api_keys, settings.api_keys_file),
            tokens=TokenIssuer(settings.token_ttl_s),
            limits=ClientLimits(
                KeyDefaults(
                    max_streams=settings.key_max_streams,
                    streams_per_minute=settings.key_streams_per_minute,
                    chars_per_minute=settings.key_chars_per_minute,
                )
            ),
            max_connections=settings.max_connections,
        )
