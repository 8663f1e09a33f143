"""Who may use the server, and how much: API keys, browser tokens, per-key limits, the edge guard.

The parts that decide (keys, tokens, limits) are plain objects with an injectable clock and no
I/O, tested on their own; `guard` is the ASGI edge that applies them to every request.
"""

from .keys import Client, KeyStore, KeyStoreError, hash_key
from .limits import ClientLimits, TokenBucket
from .tokens import TokenIssuer

__all__ = ["Client", "ClientLimits", "KeyStore", "KeyStoreError", "TokenBucket", "TokenIssuer", "hash_key"]
