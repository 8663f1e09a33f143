"""The optional mDNS announcement (`--wyoming-zeroconf`): a `_wyoming._tcp.local.` service, which
Home Assistant's Wyoming integration discovers and offers to add."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .endpoint import TcpAddress

SERVICE_TYPE = "_wyoming._tcp.local."
# Where mDNS sends: a datagram socket "connected" there shows the address of the outgoing interface.
MDNS_GROUP = "224.0.0.251"


def service_name(hostname: str | None = None) -> str:
    host = (hostname or socket.gethostname()).split(".")[0] or "server"
    return f"stream_server-{host}.{SERVICE_TYPE}"


def announced_ip(address: TcpAddress) -> str:
    """The address to announce: the listener's own, or for a wildcard one the outgoing interface's."""
    if address.host not in ("0.0.0.0", "::", ""):
        return socket.gethostbyname(address.host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((MDNS_GROUP, 1))  # no packet is sent
        return probe.getsockname()[0]


@asynccontextmanager
async def announced(
    address: TcpAddress, hostname: str | None = None, interfaces: list[str] | None = None
) -> AsyncIterator[str]:
    """Registered while inside (yields the service's name); unregistered on the way out.
    `interfaces`: where to announce (default: every interface)."""
    from zeroconf import InterfaceChoice, IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    info = AsyncServiceInfo(
        SERVICE_TYPE,
        service_name(hostname),
        addresses=[socket.inet_aton(announced_ip(address))],
        port=address.port,
    )
    zeroconf = AsyncZeroconf(interfaces=interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
    try:
        await zeroconf.async_register_service(info)
        yield info.name
    finally:
        await zeroconf.async_unregister_all_services()
        await zeroconf.async_close()
