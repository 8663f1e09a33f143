"""Sends a passage's tokens at a steady rate, like an LLM streaming its answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence


async def feed_tokens(
    tokens: Sequence[str],
    tokens_per_s: float,
    send: Callable[[str], Awaitable[None]],
    on_sent: Callable[[int, float], None],
) -> None:
    """Send every token; token i is due i / tokens_per_s after the first (0: all at once).

    The schedule is absolute, so a late send does not push every later token back: under load
    the feeder catches up, as a client fed by a remote LLM would. `on_sent(i, t)` gets the
    `perf_counter()` taken just before token i is handed to the transport.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    interval = 1.0 / tokens_per_s if tokens_per_s > 0 else 0.0
    for index, token in enumerate(tokens):
        if interval:
            delay = start + index * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        on_sent(index, time.perf_counter())
        await send(token)
