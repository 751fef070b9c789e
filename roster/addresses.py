"""Which IP addresses a tool may reach: public ones, and the private ones an agent lists.

Loopback, private (RFC 1918), shared (CGNAT 100.64/10), link-local, unique-local,
unspecified, multicast and reserved addresses belong to this machine or its network,
not to the internet: a request there from a model is how a web page reaches the
services behind the firewall. Cloud metadata addresses hand out the host's
credentials, so they pass only when an agent lists that very address. IPv6 forms
that carry an IPv4 address (mapped `::ffff:a.b.c.d`, 6to4, NAT64) are judged by the
address they carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})

_SHARED = ip_network("100.64.0.0/10")  # CGNAT: not private by Python's tables, not public
_NAT64 = ip_network("64:ff9b::/96")
_NAT64_LOCAL = ip_network("64:ff9b:1::/48")  # its IPv4 mapping is the operator's own


def parse_address(text: str) -> Address | None:
    """The address `text` writes in its usual form; None for a name (or an odd form)."""
    try:
        return ip_address(text)
    except ValueError:
        return None


def looks_numeric(host: str) -> bool:
    """Whether an HTTP client takes `host` for an address rather than a name to resolve.

    aiohttp's test: a colon, or nothing but digits and dots. Such a host that is not
    an address in its usual form (`127.1`, `2130706433`) is refused outright: the
    operating system would read it as some address no check here has seen.
    """
    return ":" in host or host.replace(".", "").isdigit()


def carried(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), else itself."""
    if isinstance(address, IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def kind(address: Address) -> str | None:
    """What a non-public address is ("a loopback address"), or None for a public one."""
    inner = carried(address)
    if inner in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for test, name in (
        (lambda a: a.is_loopback, "a loopback address"),
        (lambda a: a.is_unspecified, "the unspecified address"),
        (lambda a: a.is_link_local, "a link-local address"),
        (lambda a: a.is_multicast, "a multicast address"),
        (lambda a: a in _SHARED, "a shared (CGNAT) address"),
        (lambda a: a.is_private, "a private address"),
        (lambda a: not a.is_global, "not a public address"),
    ):
        if test(inner):
            return name
    if address in _NAT64_LOCAL:
        return "not a public address"
    return None


def allowed(address: Address, networks: Iterable[Network]) -> bool:
    """Whether an agent's `private_networks` let it reach this non-public address.

    A metadata address must be listed by itself (`169.254.169.254`), not within a
    wider network: `169.254.0.0/16` does not hand out the host's credentials.
    """
    inner = carried(address)
    metadata = inner in METADATA_ADDRESSES or address in METADATA_ADDRESSES
    for network in networks:
        if metadata and network.num_addresses != 1:
            continue
        if address in network or inner in network:
            return True
    return False
