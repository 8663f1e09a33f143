"""API keys: from `--api-keys` (plain) and `--api-keys-file` (hashed), checked in constant time.

A keys file holds one key per line, never the key itself:

    # name     hash                                        optional per-key limits
    alice      sha256:9f86d08188...                        max_streams=5 chars_per_minute=20000
    bot-prod   sha256:60303ae22b...

`python -m stream_server.security hash-key NAME` reads a key on stdin and prints its line
(`hash-key --generate NAME` makes the key too). Keys are long random strings (`new_key()`), so one
SHA-256 is enough: a slow hash protects guessable passwords, and it would cost every request its
time. That is also why hash-key refuses keys shorter than `MIN_KEY_CHARS`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
LIMIT_FIELDS = ("max_streams", "streams_per_minute", "chars_per_minute")


class KeyStoreError(ValueError):
    """The keys file cannot be read or has a bad line (the message says which)."""


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling: a key's name, or anonymous when the server runs without keys."""

    key: str | None
    limits: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    """Per-key overrides of the `--key-*` limits, from the keys file."""

    @property
    def label(self) -> str:
        return self.key or "anonymous"


ANONYMOUS = Client(None)


MIN_KEY_CHARS = 16
"""Shorter keys could be guessed, and a fast hash would not slow the guessing down."""

# What a key looks like wherever it may be pasted: a run of MIN_KEY_CHARS or more of the characters
# random keys are written in (base64, base64url, hex; `sk-...` provider keys too).
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_\-.~+/=]{%d,}" % MIN_KEY_CHARS)


def looks_like_key(value: str) -> bool:
    """Whether `value` has the shape of an API key (ours or a provider's): what a log masks
    wherever it appears, whatever the parameter is called. Voice ids of 16 characters or more
    match too; masking one of those costs less than printing one key."""
    return _KEY_SHAPE.fullmatch(value) is not None


def new_key() -> str:
    """A random key: 32 bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_line(name: str, key: str) -> str:
    if not _NAME.fullmatch(name):
        raise KeyStoreError(f"key names are 1-64 of A-Z a-z 0-9 _ . -, not {name!r}")
    return f"{name} sha256:{hash_key(key).hex()}"


class KeyStore:
    def __init__(self, entries: list[tuple[Client, bytes]] = []) -> None:  # noqa: B006 - not mutated
        self._entries = list(entries)

    @classmethod
    def load(cls, plain: tuple[str, ...], path: str | None) -> KeyStore:
        entries = [(Client(f"key-{i + 1}"), hash_key(key)) for i, key in enumerate(plain)]
        if path is not None:
            entries += _read_file(Path(path))
        names = [client.key for client, _ in entries]
        if len(set(names)) != len(names):
            raise KeyStoreError("two keys have the same name")
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, presented: str) -> Client | None:
        """The client whose key this is, or None. Every stored hash is compared, match or not,
        so the time taken does not tell how much of a key was right or where it is stored."""
        digest = hash_key(presented)
        found: Client | None = None
        for client, stored in self._entries:
            if hmac.compare_digest(digest, stored):
                found = client
        return found

    def get(self, name: str) -> Client | None:
        """A key by name (a token names its key)."""
        return next((client for client, _ in self._entries if client.key == name), None)

    def clients(self) -> list[Client]:
        return [client for client, _ in self._entries]


def _read_file(path: Path) -> list[tuple[Client, bytes]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"cannot read the keys file {path}: {exc}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        name, _, rest = line.partition(" ")
        parts = rest.split()
        if not _NAME.fullmatch(name) or not parts:
            raise KeyStoreError(f"{where}: expected 'name sha256:HEX [limit=N ...]'")
        match = _HASH.fullmatch(parts[0])
        if match is None:
            # Never echo the value: a plain key pasted here by mistake must not reach a log.
            raise KeyStoreError(f"{where}: the key must be stored as sha256:<64 hex digits> (hash-key prints it)")
        limits = {}
        for option in parts[1:]:
            key, _, value = option.partition("=")
            if key not in LIMIT_FIELDS or not value.isdigit():
                raise KeyStoreError(f"{where}: unknown limit {option!r}; use {', '.join(LIMIT_FIELDS)} =N")
            limits[key] = int(value)
        entries.append((Client(name, limits), bytes.fromhex(match.group(1))))
    return entries
