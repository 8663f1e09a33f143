"""The process's link to Redis, against a real redis-server: commands, an outage and the recovery
(watched, logged once each way), and a password that never shows."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
from redis.exceptions import ResponseError

from stream_server.cluster import RedisLink, RedisUnavailable, hashed, key, redacted
from stream_server.settings_loader import settings_from_raw
from tests.redis_server import redis_server

PASSWORD = "s3cret-redis-pass"


def test_redacted_hides_user_and_password() -> None:
    assert redacted(f"redis://:{PASSWORD}@10.0.0.5:6380/2") == "redis://***@10.0.0.5:6380/2"
    assert redacted(f"rediss://app:{PASSWORD}@cache.internal/0") == "rediss://***@cache.internal/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted(f"redis://127.0.0.1:6379/0?password={PASSWORD}&db=1") == "redis://127.0.0.1:6379/0?password=***&db=1"


def test_hashed_names_are_stable_and_hide_the_value() -> None:
    assert hashed("alice") == hashed("alice") != hashed("bob")
    assert "alice" not in hashed("alice")
    assert key("limits", hashed("alice")).startswith("ss:limits:")


def test_the_settings_never_print_the_redis_url() -> None:
    settings = settings_from_raw({"redis_url": f"redis://:{PASSWORD}@127.0.0.1:6379/0"})
    assert PASSWORD not in repr(settings)


async def _wait_until(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_an_outage_is_an_error_of_ours_and_the_link_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stream_server.cluster.link")
    with redis_server(password=PASSWORD) as server:
        link = RedisLink(server.url)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(link.watch)
                await link.call(lambda r: r.set(key("probe"), b"1", ex=60))
                assert await link.call(lambda r: r.get(key("probe"))) == b"1"
                assert link.available

                server.stop()
                with pytest.raises(RedisUnavailable) as raised:
                    await link.call(lambda r: r.get(key("probe")))
                assert PASSWORD not in str(raised.value)
                assert not link.available
                # Calls while it is down fail the same way, and the loss is logged once.
                for _ in range(3):
                    with pytest.raises(RedisUnavailable):
                        await link.call(lambda r: r.get(key("probe")))

                server.start()
                # No traffic: the watcher's pings notice the recovery.
                await _wait_until(lambda: link.available)
                assert await link.call(lambda r: r.ping())
                group.cancel_scope.cancel()
        finally:
            await link.aclose()
    events = [r.getMessage() for r in caplog.records]
    assert events.count("redis.unreachable") == 1
    assert events.count("redis.restored") == 1
    assert all(PASSWORD not in str(r.__dict__) for r in caplog.records)


async def test_a_full_pool_waits_then_refuses_without_taking_redis_for_down() -> None:
    with redis_server() as server:
        link = RedisLink(server.url, max_connections=0)  # the floor: MIN_CONNECTIONS
        try:
            from stream_server.cluster.link import MIN_CONNECTIONS

            # Every connection held by a blocking read, as SSE readers hold theirs.
            stream = key("busy")

            async def blocked() -> None:
                await link.call(lambda r: r.xread({stream: "$"}, block=1500))

            async with anyio.create_task_group() as group:
                for _ in range(MIN_CONNECTIONS):
                    group.start_soon(blocked)
                with pytest.raises(RedisUnavailable, match="in use"):
                    with anyio.fail_after(10):
                        while True:  # until every connection is held (bounded above)
                            await link.call(lambda r: r.ping())
                            await asyncio.sleep(0.01)
                assert link.available
            # The reads ended: a connection is free again.
            assert await link.call(lambda r: r.ping())
        finally:
            await link.aclose()


async def test_redis_refusing_for_its_own_state_is_an_outage_not_a_crash() -> None:
    """maxmemory reached (as a demoted primary's READONLY, a failed save's MISCONF): commands fail
    with a ResponseError that is Redis' state, not our bug; the caller gets RedisUnavailable."""
    with redis_server() as server:
        link = RedisLink(server.url)
        try:
            with server.client() as admin:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", "1")
            with pytest.raises(RedisUnavailable, match="OutOfMemory"):
                await link.call(lambda r: r.set(key("probe"), b"x" * 100, ex=60))
            assert not link.available
            with server.client() as admin:
                admin.config_set("maxmemory", "0")
            assert await link.call(lambda r: r.set(key("probe"), b"1", ex=60))
            assert link.available
            # A script's own error is still ours: it propagates as it is.
            with pytest.raises(ResponseError):
                await link.call(lambda r: r.eval("return redis.call('NOSUCHCOMMAND')", 0))
        finally:
            await link.aclose()
