"""What a server shares through Redis, installed for as long as the app runs (`--redis-url`).

Per-key limits and browser tokens (`Access`), and every cloud provider's request slots: each gets
its Redis-backed implementation, which falls back on the local one it replaces while Redis is
away. The `LeaseKeeper` returned keeps this process's leases alive; the lifespan runs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..providers import Provider
from ..providers.http import HttpProvider
from ..providers.slots import LocalSlots
from ..security.access import Access
from ..security.limits import LocalKeyLimits
from ..security.tokens import LocalTokens
from .leases import LeaseKeeper
from .limits import SharedKeyLimits
from .link import RedisLink
from .slots import SharedSlots
from .tokens import SharedTokens


@contextmanager
def sharing(
    link: RedisLink, access: Access, providers: Mapping[str, Provider], lease_ttl_s: float
) -> Iterator[LeaseKeeper]:
    keeper = LeaseKeeper(link, lease_ttl_s)
    local_limits, local_tokens = access.limits, access.tokens
    assert isinstance(local_limits, LocalKeyLimits) and isinstance(local_tokens, LocalTokens)
    access.limits = SharedKeyLimits(keeper, local_limits)
    access.tokens = SharedTokens(link, local_tokens)
    cloud = [p for p in providers.values() if isinstance(p, HttpProvider)]
    for provider in cloud:
        local = LocalSlots(provider.settings.max_concurrency)
        provider.share_slots(SharedSlots(keeper, provider.slot_scope, local))
    try:
        yield keeper
    finally:
        # Providers and the access state may outlive this app (tests share them): as they were.
        access.limits, access.tokens = local_limits, local_tokens
        for provider in cloud:
            provider.share_slots(LocalSlots(provider.settings.max_concurrency))
