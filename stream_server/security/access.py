"""The server's access state, made once from the settings: its keys, token issuer and limits.

Tokens and limits are kept in this process; with `--redis-url` the app swaps in the cluster's
(`cluster/share.py`), which fall back on these while Redis is away."""

from __future__ import annotations

from dataclasses import dataclass

from ..connections import ConnectionLimits, ConnectionTable
from ..settings import Settings, is_loopback
from .keys import KeyStore, KeyStoreError
from .limits import ClientLimits, KeyDefaults, KeyLimits, LocalKeyLimits
from .tokens import LocalTokens, TokenIssuer, TokenStore


@dataclass
class Access:
    keys: KeyStore
    tokens: TokenStore
    limits: KeyLimits
    connections: ConnectionTable
    """Every accepted socket (HTTP keep-alive, WebSocket, one still sending its request head)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Raises `KeyStoreError` when the keys file is unreadable or malformed, or holds no key
        while the server would otherwise be open on a non-loopback address."""
        keys = KeyStore.load(settings.api_keys, settings.api_keys_file)
        if not keys.enabled and not (settings.insecure_no_auth or is_loopback(settings.host)):
            # Every key commented out must not mean "anyone may come in".
            raise KeyStoreError(
                f"{settings.api_keys_file} holds no key, and {settings.host!r} is not a loopback address; "
                "add a key, or pass --insecure-no-auth to serve openly anyway"
            )
        return cls(
            keys=keys,
            tokens=LocalTokens(TokenIssuer(settings.token_ttl_s)),
            limits=LocalKeyLimits(
                ClientLimits(
                    KeyDefaults(
                        max_streams=settings.key_max_streams,
                        streams_per_minute=settings.key_streams_per_minute,
                        chars_per_minute=settings.key_chars_per_minute,
                    )
                )
            ),
            connections=ConnectionTable(
                ConnectionLimits(
                    max_connections=settings.max_connections,
                    header_timeout_s=settings.header_timeout_s,
                    write_timeout_s=settings.write_timeout_s,
                )
            ),
        )
