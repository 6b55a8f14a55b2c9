"""What netpathd knows of the kernel's links, addresses and default routes.

Plain frozen values: the rtnetlink adapter produces them, the DNS ordering and
the automatic MPTCP endpoints consume them.  Links are keyed by ifindex so a
rename never breaks a binding made by name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Family(Enum):
    IPV4 = 4
    IPV6 = 6


@dataclass(frozen=True, slots=True)
class Link:
    ifindex: int
    name: str
    up: bool  # administratively up (IFF_UP); carrier is not required, like NetworkManager


@dataclass(frozen=True, slots=True)
class Address:
    ifindex: int
    address: IPAddress
    prefixlen: int
    scope: int  # RT_SCOPE_*: 0 universe, 253 link, 254 host
    tentative: bool  # IFA_F_TENTATIVE: IPv6 DAD not finished yet

    @property
    def family(self) -> Family:
        return Family.IPV4 if self.address.version == 4 else Family.IPV6


@dataclass(frozen=True, slots=True)
class DefaultRoute:
    """A default route of the main table (dst_len 0)."""

    family: Family
    ifindex: int
    metric: int
    gateway: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class NetState:
    links: dict[int, Link] = field(default_factory=dict)
    addresses: frozenset[Address] = frozenset()
    default_routes: frozenset[DefaultRoute] = frozenset()

    def link_by_name(self, name: str) -> Link | None:
        return next((link for link in self.links.values() if link.name == name), None)

    def best_default_route(self, family: Family) -> DefaultRoute | None:
        """The kernel's lowest-metric default route of the family (ties: lowest ifindex)."""
        candidates = [
            route
            for route in self.default_routes
            if route.family is family and route.ifindex in self.links
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda route: (route.metric, route.ifindex))
