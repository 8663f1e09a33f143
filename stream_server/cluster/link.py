"""The process's one link to Redis (`--redis-url`): a connection pool, its health, its errors.

Everything the servers of a cluster share (per-key limits, browser tokens, SSE sessions, cloud
providers' request slots) goes through one `RedisLink` per process, so that there is one pool,
one set of timeouts, one place where Redis' errors become ours (`RedisUnavailable`) and one view
of whether Redis is reachable (`available`, shown by `/readyz`). A call that fails marks the link
down at once; `watch()` pings while it is down (and now and then while it is up) and logs the loss
and the recovery once each, never once per failed call. The URL may carry a password: only
`redacted(url)` is ever logged or shown.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from ..logs import log_event

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 1.0
"""Redis is on the same network as the servers: a connection that takes longer is a fault."""
COMMAND_TIMEOUT_S = 2.0
"""No command of ours blocks in Redis (blocking reads pass their own, shorter, timeout)."""
POOL_WAIT_S = 1.0
"""How long a call waits for a free connection when the pool is at its bound."""
MIN_CONNECTIONS = 16
"""The pool's floor, for the commands of a process with few streams and connections."""
PING_UP_S = 5.0
PING_DOWN_S = 0.5
"""How often `watch()` pings while Redis answers, and while it does not (to notice it is back)."""
KEY_PREFIX = "ss:"
"""Every key this server writes starts with it, so a Redis shared with other software stays apart."""


class RedisUnavailable(Exception):
    """Redis did not answer (refused, timed out, went away). The caller falls back or refuses;
    the message holds no URL and no password."""


def redacted(url: str) -> str:
    """`url` with its password (and user) replaced by `***`, in the address or in the query
    (`?password=`, which redis-py takes too), for logs and errors."""
    parts = urlsplit(url)
    if parts.password is not None or parts.username is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"***@{host}")
    if parts.query:
        query = [(name, "***" if name.lower() in _SECRET_PARAMETERS else value) for name, value in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


_SECRET_PARAMETERS = frozenset({"password", "username"})


def hashed(value: str) -> str:
    """A stable, non-reversible name for `value` (an API key's name, a session id) in Redis' keys:
    what is in Redis never names a key or a session (`docs/scaling.md`)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def key(*parts: str) -> str:
    """A Redis key of this server: `ss:` and the parts joined by `:`."""
    return KEY_PREFIX + ":".join(parts)


class RedisLink:
    """One per process, made from `--redis-url`. Use `call()` for every command or script.

    `max_connections` bounds the pool. An SSE session holds a connection in a blocking read on
    its owner (its text) and on each server a reader of it is on (its events), so the app sizes
    the pool from what it may hold open (--max-streams and --max-connections); past the bound a
    call waits for a connection (a `BlockingConnectionPool`: redis-py's plain pool would fail at
    once) for up to `POOL_WAIT_S`, and a call that still finds none is refused without
    taking Redis for down.
    """

    def __init__(
        self, url: str, *, max_connections: int = MIN_CONNECTIONS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = redacted(url)
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max(MIN_CONNECTIONS, max_connections),
            timeout=POOL_WAIT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            # Bytes in, bytes out: values are ours (JSON, audio events), decoded where they are read.
            decode_responses=False,
            # A connection that has sat in the pool while Redis restarted is checked before use.
            health_check_interval=10,
        )
        self._client: redis.Redis = redis.Redis(connection_pool=pool)
        self._clock = clock
        self._available = True
        self._changed = anyio.Event()
        self._down_since: float | None = None

    @property
    def client(self) -> redis.Redis:
        """The pool's client, for `call(lambda r: r.…)` and for registering scripts."""
        return self._client

    @property
    def available(self) -> bool:
        """Whether the last command (or ping) got an answer."""
        return self._available

    async def call(self, command: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """`await command(client)`, with Redis' connection errors and timeouts as `RedisUnavailable`.

        A script's own error (`ResponseError`) is a bug of ours, not an outage: it propagates.
        """
        try:
            result = await command(self._client)
        except ResponseError as exc:
            if not _refused_by_server_state(exc):
                raise
            # A demoted primary after a failover, maxmemory reached, a failed save, a loading
            # replica, a script running too long: Redis is there but cannot serve us now.
            self._mark(False)
            raise RedisUnavailable(f"Redis at {self.url} cannot serve now ({_first_word(exc)})") from None
        except RedisConnectionError as exc:
            if _pool_exhausted(exc):
                raise RedisUnavailable("every connection to Redis is in use; retry") from None
            self._mark(False)
            raise RedisUnavailable(f"Redis at {self.url} is unreachable ({type(exc).__name__})") from None
        except (RedisError, OSError) as exc:
            self._mark(False)
            raise RedisUnavailable(f"Redis at {self.url} is unreachable ({type(exc).__name__})") from None
        self._mark(True)
        return result

    async def ping(self) -> bool:
        try:
            await self.call(lambda r: r.ping())
        except RedisUnavailable:
            return False
        return True

    async def watch(self) -> None:
        """Pings Redis for as long as the server serves, so that `available` recovers without
        traffic. Run it in the lifespan's task group; cancelling it is how it ends."""
        while True:
            await self.ping()
            with anyio.move_on_after(PING_UP_S if self._available else PING_DOWN_S):
                await self._changed.wait()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

    def _mark(self, available: bool) -> None:
        if available == self._available:
            return
        self._available = available
        if available:
            down_s = self._clock() - self._down_since if self._down_since is not None else 0.0
            self._down_since = None
            log_event(logger, "redis.restored", url=self.url, down_s=round(down_s, 1))
        else:
            self._down_since = self._clock()
            log_event(logger, "redis.unreachable", level=logging.WARNING, url=self.url)
        self._changed.set()
        self._changed = anyio.Event()


_SERVER_STATE_ERRORS = ("READONLY", "OOM", "NOPERM", "MISCONF", "LOADING", "MASTERDOWN", "BUSY", "NOREPLICAS")
"""Error prefixes with which Redis refuses a command because of its own state, not the command:
treated as an outage (the caller falls back), never as a bug of ours. Inside a script Redis
prefixes them with the script's error, so the words are looked for, not only at the start."""


def _refused_by_server_state(exc: ResponseError) -> bool:
    # redis-py strips the prefix of those it has a class for.
    if isinstance(exc, ReadOnlyError | OutOfMemoryError | NoPermissionError):
        return True
    words = str(exc).replace(":", " ").split()
    return any(word in _SERVER_STATE_ERRORS for word in words)


def _first_word(exc: ResponseError) -> str:
    words = [w for w in str(exc).replace(":", " ").split() if w in _SERVER_STATE_ERRORS]
    return words[0] if words else type(exc).__name__  # OutOfMemoryError...


def _pool_exhausted(exc: RedisConnectionError) -> bool:
    """Whether a `BlockingConnectionPool` found no free connection in time (Redis itself is fine):
    it raises a ConnectionError from the timeout of its wait."""
    return isinstance(exc.__cause__, TimeoutError) and "No connection available" in str(exc)
