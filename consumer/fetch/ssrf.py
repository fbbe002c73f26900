"""SSRF guard: decides which addresses a claim-check fetch may connect to.

Event URLs come from outside, so a URL must never make the service reach its own network:
loopback, private and shared ranges, link-local (including the cloud metadata endpoints
169.254.169.254 and fd00:ec2::254), multicast, reserved, documentation and unspecified
addresses are refused, for IPv4 and IPv6 alike, and IPv6 forms that embed an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the
embedded address. A host name is refused when *any* of its addresses is refused, and the fetch
connects to a vetted address (no second DNS lookup, so no DNS rebinding).

Exceptions: an address inside an allow-listed CIDR, or a host name on the allow list (matched
exactly, case-insensitively), is allowed. Tests and the demo allow-list ``127.0.0.1/32``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses`` as text; the default uses ``socket.getaddrinfo``."""

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified / this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "NAT64 local-use"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique-local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class ForbiddenAddressError(Exception):
    """A host or address the policy refuses to connect to."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"refusing to connect to {shown}: {reason} address")
        self.host = host
        self.address = address
        self.reason = reason


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is."""
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return None if inner is None else f"{inner} (embedded in IPv6)"
    for network, reason in _BLOCKED:
        if ip in network:
            return reason
    if ip.is_multicast or ip.is_reserved or ip.is_private or not ip.is_global:
        return "non-global"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for a TCP connection, in its order, deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _normalise_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which hosts and addresses a fetch may reach (public unicast plus the allow lists)."""

    allow_hosts: frozenset[str] = frozenset()
    allow_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_lists(
        cls, hosts: Iterable[str] = (), cidrs: Iterable[str | IPNetwork] = ()
    ) -> AddressPolicy:
        """Build from settings: host names, and CIDRs or single addresses."""
        return cls(
            allow_hosts=frozenset(_normalise_host(h) for h in hosts),
            allow_cidrs=tuple(ipaddress.ip_network(c, strict=False) for c in cidrs),
        )

    def host_allowed(self, host: str) -> bool:
        """True when the host name is on the allow list (then its addresses are not checked)."""
        return _normalise_host(host) in self.allow_hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        """True for public unicast addresses and for addresses in an allowed CIDR."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if any(c in net for c in candidates for net in self.allow_cidrs):
            return True
        return blocked_reason(ip) is None

    def check_address(self, ip: IPAddress, host: str | None = None) -> None:
        """Raise :class:`ForbiddenAddressError` unless ``ip`` may be connected to."""
        if not self.address_allowed(ip):
            reason = blocked_reason(ip) or "forbidden"
            raise ForbiddenAddressError(host or str(ip), str(ip), reason)

    def resolve(
        self, host: str, port: int, resolver: Resolver = system_resolver
    ) -> list[IPAddress]:
        """Vetted addresses of ``host``: all of them must pass, or the host is refused.

        IP literals are checked without DNS. Raises :class:`ForbiddenAddressError`, or
        :class:`socket.gaierror` when the name does not resolve.
        """
        literal = _parse_ip(host)
        if literal is not None:
            if not self.host_allowed(host):
                self.check_address(literal)
            return [literal]
        addresses = [ip for a in resolver(host, port) if (ip := _parse_ip(a)) is not None]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no usable address")
        if not self.host_allowed(host):
            for ip in addresses:
                self.check_address(ip, host)
        return addresses


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
