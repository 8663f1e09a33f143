"""Where the Wyoming listener listens and whom it answers, sans I/O.

Wyoming has no authentication: anyone who reaches the port can synthesize (and spend the cloud
providers' credits). So a listener on a non-loopback address refuses to start unless it is told
which client networks to answer (`--wyoming-allow CIDR,...`) or to answer anyone
(`--insecure-wyoming-open`). Loopback clients are always answered; a `unix://` socket is guarded by
its file permissions.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...settings import Settings, SettingsError, is_loopback, setting_error

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class UnixAddress:
    path: str


Address = TcpAddress | UnixAddress


def parse_uri(uri: str) -> Address:
    """`tcp://HOST:PORT` or `unix://PATH`, as the `wyoming` package's servers take them.
    Raises `SettingsError` naming --wyoming-uri."""
    parts = urlsplit(uri)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path:
            raise setting_error("wyoming_uri", f"{uri!r} names no socket path (unix:///run/stream_server.sock)")
        return UnixAddress(path)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise setting_error("wyoming_uri", f"{uri!r} needs a host and a port (tcp://127.0.0.1:10200)")
        return TcpAddress(parts.hostname, port)
    raise setting_error("wyoming_uri", f"{uri!r}: use tcp://HOST:PORT or unix://PATH")


def allowed_networks(settings: Settings) -> tuple[IpNetwork, ...]:
    networks = []
    for cidr in settings.wyoming_allow:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise setting_error("wyoming_allow", f"{cidr!r} is not an address or a network (192.168.1.0/24)") from None
    return tuple(networks)


def check_wyoming_settings(settings: Settings) -> Address | None:
    """The listener's address (None: no listener). Raises `SettingsError` when it would answer
    anyone on a network without being told to."""
    networks = allowed_networks(settings)
    if settings.wyoming_uri is None:
        if settings.wyoming_zeroconf:
            raise setting_error("wyoming_zeroconf", "announces the Wyoming listener: set --wyoming-uri too")
        return None
    address = parse_uri(settings.wyoming_uri)
    open_network = isinstance(address, TcpAddress) and not is_loopback(address.host)
    if open_network and not networks and not settings.insecure_wyoming_open:
        raise SettingsError(
            f"--wyoming-uri {settings.wyoming_uri}: Wyoming has no authentication, and {address.host!r} is not a "
            "loopback address, so anyone who reaches the port could use the server (and its cloud credits). "
            "Name the clients' networks with --wyoming-allow (e.g. 192.168.1.0/24), or pass "
            "--insecure-wyoming-open to answer anyone"
        )
    return address


def peer_allowed(host: str | None, networks: tuple[IpNetwork, ...], open_to_all: bool) -> bool:
    """Whether a client connecting from `host` (None: a unix socket) is answered."""
    if host is None or open_to_all:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or any(address in network for network in networks)
