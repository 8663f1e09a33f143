"""What the servers of a cluster share through Redis (`--redis-url`); without it, nothing here runs
and every server keeps its state in its own process (the embedded default)."""

from .link import RedisLink, RedisUnavailable, hashed, key, redacted

__all__ = ["RedisLink", "RedisUnavailable", "hashed", "key", "redacted"]
