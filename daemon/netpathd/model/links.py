"""What netpathd knows of the kernel's links, addresses and default routes.

Plain frozen values: the rtnetlink adapter produces them, the DNS ordering and
the automatic MPTCP endpoints consume them.  Links are keyed by ifindex so a
rename never breaks a binding made by name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from dataclasses import dataclass, field
from enum import Enum
from typing import cast

from netpathd.model.tables import AddressTable, RouteTable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Family(Enum):
    IPV4 = 4
    IPV6 = 6


@dataclass(frozen=True, slots=True)
class Link:
    """A network interface as rtnetlink reports it (RTM_NEWLINK)."""

    ifindex: int
    name: str
    up: bool  # administratively up (IFF_UP); carrier is not required, like NetworkManager
    carrier: bool = True  # IFF_LOWER_UP: without it the kernel flags the link's routes linkdown
    kind: str = ""  # IFLA_INFO_KIND ("tun", "wireguard", "veth"...); "" for hardware


@dataclass(frozen=True, slots=True)
class Address:
    """One address of a link (RTM_NEWADDR)."""

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
    """A default route of the main table (dst_len 0).

    `linkdown` is the next hop's RTNH_F_LINKDOWN: its link has no carrier.  The
    kernel keeps such a route and still lists it, but NetworkManager drops the
    connection of a device without carrier, so it is nobody's best default route.
    """

    family: Family
    ifindex: int
    metric: int
    gateway: IPAddress | None = None
    linkdown: bool = False


@dataclass(frozen=True, slots=True)
class NetState:
    """Links, addresses and default routes; any `Set` given is indexed on construction.

    The address and route sets are `AddressTable` / `RouteTable`, persistent and
    indexed by link, so the reducers in `model.netstate` change a state in O(1)
    and the questions below are answered without a scan.
    """

    links: dict[int, Link] = field(default_factory=dict)
    addresses: Set[Address] = frozenset()
    default_routes: Set[DefaultRoute] = frozenset()
    # Memo of best_default_route() per family; the reducers carry it over when they can.
    best: dict[Family, DefaultRoute | None] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    # Memo of link_by_name(): built on the first question, as `links` never changes in place.
    by_name: dict[str, Link] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.addresses, AddressTable):
            object.__setattr__(self, "addresses", AddressTable(self.addresses))
        if not isinstance(self.default_routes, RouteTable):
            object.__setattr__(self, "default_routes", RouteTable(self.default_routes))

    @property
    def address_table(self) -> AddressTable:
        return cast(AddressTable, self.addresses)

    @property
    def route_table(self) -> RouteTable:
        return cast(RouteTable, self.default_routes)

    def link_by_name(self, name: str) -> Link | None:
        """The link called ``name`` (the first by ifindex order of arrival if two are)."""
        if self.by_name is None:
            by_name: dict[str, Link] = {}
            for link in self.links.values():
                by_name.setdefault(link.name, link)
            object.__setattr__(self, "by_name", by_name)
            return by_name.get(name)
        return self.by_name.get(name)

    def addresses_on(self, ifindex: int) -> list[Address]:
        return self.address_table.on_link(ifindex)

    def has_ipv4_address(self, ifindex: int) -> bool:
        return self.address_table.has_ipv4(ifindex)

    def has_default_route(self, ifindex: int, family: Family) -> bool:
        """Whether the link holds a default route of the family that is not linkdown."""
        return self.route_table.has_up(ifindex, family)

    def usable(self, route: DefaultRoute) -> bool:
        return not route.linkdown and route.ifindex in self.links

    def best_default_route(self, family: Family) -> DefaultRoute | None:
        """The kernel's lowest-metric default route of the family (ties: lowest ifindex).

        Routes flagged linkdown do not count, as NetworkManager does not count a
        device without carrier.  One scan when the reducers could not carry the
        answer over (the best route itself went away), then memoized.
        """
        if family in self.best:
            return self.best[family]
        best = self.route_table.lowest(family, rank, self.usable)
        self.best[family] = best
        return best


def rank(route: DefaultRoute) -> tuple[int, int]:
    """Lower is better: the metric, then (for determinism) the lower ifindex."""
    return (route.metric, route.ifindex)
