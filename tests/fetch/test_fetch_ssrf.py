"""The SSRF guard on many addresses, allow-lists, and resolution rules."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from consumer.fetch.ssrf import (
    AddressPolicy,
    ForbiddenAddressError,
    blocked_reason,
    system_resolver,
)

BLOCKED = {
    # IPv4
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared",
    "100.100.100.200": "shared",  # Alibaba Cloud metadata
    "169.254.169.254": "cloud metadata",
    "169.254.0.1": "link-local",
    "192.0.0.8": "IETF",
    "192.0.2.1": "documentation",
    "198.51.100.7": "documentation",
    "203.0.113.9": "documentation",
    "198.18.0.1": "benchmarking",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    # IPv6
    "::": "unspecified",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fc00::1": "unique-local",
    "fd00:ec2::254": "cloud metadata",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "2001:db8::1": "documentation",
    "100::1": "discard",
    "2001::1": "IETF",
    "::127.0.0.1": "IPv4-compatible",
    "64:ff9b:1::a00:1": "NAT64 local-use",
    # IPv6 embedding a forbidden IPv4
    "::ffff:127.0.0.1": "loopback (embedded",
    "::ffff:169.254.169.254": "cloud metadata (embedded",
    "::ffff:10.1.1.1": "private (embedded",
    "64:ff9b::a9fe:a9fe": "cloud metadata (embedded",
    "64:ff9b::7f00:1": "loopback (embedded",
    "2002:c0a8:101::1": "private (embedded",
}
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",  # just outside 172.16/12
    "100.128.0.1",  # just outside 100.64/10
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED.items())
def test_blocked_addresses(address: str, reason: str) -> None:
    ip = ipaddress.ip_address(address)
    found = blocked_reason(ip)
    assert found is not None and found.startswith(reason), found
    with pytest.raises(ForbiddenAddressError, match="refusing"):
        AddressPolicy().check_address(ip)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert blocked_reason(ip) is None
    AddressPolicy().check_address(ip)


def test_allow_cidrs() -> None:
    policy = AddressPolicy.from_lists(cidrs=["127.0.0.1/32", "10.20.0.0/16", "fd00::/8"])
    allowed = ["127.0.0.1", "::ffff:127.0.0.1", "10.20.30.40", "fd12::1"]
    refused = ["127.0.0.2", "10.21.0.1", "169.254.169.254", "::1", "fe80::1"]
    assert all(policy.address_allowed(ipaddress.ip_address(a)) for a in allowed)
    assert not any(policy.address_allowed(ipaddress.ip_address(a)) for a in refused)


def test_every_address_of_a_name_must_pass() -> None:
    answers = {
        "good.example": ["93.184.216.34", "2606:4700::1"],
        "mixed.example": ["93.184.216.34", "169.254.169.254"],
        "internal.example": ["10.0.0.5"],
    }
    policy = AddressPolicy()
    resolve = lambda host, port: answers[host]  # noqa: E731
    assert [str(a) for a in policy.resolve("good.example", 80, resolve)] == answers["good.example"]
    with pytest.raises(ForbiddenAddressError) as err:
        policy.resolve("mixed.example", 80, resolve)
    assert err.value.address == "169.254.169.254" and err.value.reason == "cloud metadata"
    with pytest.raises(ForbiddenAddressError):
        policy.resolve("internal.example", 80, resolve)
    trusted = AddressPolicy.from_lists(hosts=["Internal.Example."])
    assert [str(a) for a in trusted.resolve("internal.example", 80, resolve)] == ["10.0.0.5"]


def test_literals_are_checked_without_dns() -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("literal addresses must not be resolved")

    policy = AddressPolicy()
    for literal in ("127.0.0.1", "[::1]", "::ffff:7f00:1"):
        with pytest.raises(ForbiddenAddressError):
            policy.resolve(literal, 80, no_dns)
    assert [str(a) for a in policy.resolve("8.8.8.8", 80, no_dns)] == ["8.8.8.8"]


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
def test_odd_ipv4_spellings_resolve_to_loopback_and_are_refused(spelling: str) -> None:
    """inet_aton forms reach getaddrinfo as names; the resolved address is what is judged."""
    with pytest.raises(ForbiddenAddressError):
        AddressPolicy().resolve(spelling, 80, system_resolver)


def test_names_without_addresses() -> None:
    with pytest.raises(socket.gaierror):
        AddressPolicy().resolve("x.example", 80, lambda h, p: ["not-an-ip"])
