"""The pure rtnetlink reducers: single events, and event streams against a re-dump."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState
from netpathd.model.netstate import (
    AddressGone,
    AddressSeen,
    LinkGone,
    LinkSeen,
    NetEvent,
    RouteGone,
    RouteSeen,
    apply,
    apply_all,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def addr4(ifindex: int, last: int) -> Address:
    return Address(ifindex, V4(f"192.0.2.{last}"), 24, 0, False)


def route4(ifindex: int, metric: int, gateway: str = "192.0.2.1") -> DefaultRoute:
    return DefaultRoute(Family.IPV4, ifindex, metric, V4(gateway))


BASE = apply_all(
    NetState(),
    [
        LinkSeen(Link(2, "eth0", True)),
        LinkSeen(Link(3, "eth1", True)),
        AddressSeen(addr4(2, 10)),
        AddressSeen(Address(2, V6("2001:db8::10"), 64, 0, True)),
        RouteSeen(route4(2, 100)),
        RouteSeen(DefaultRoute(Family.IPV6, 2, 1024, V6("2001:db8::1"))),
        RouteSeen(route4(3, 200, "198.51.100.1")),
    ],
)


def test_reducers_never_modify_their_input() -> None:
    before = NetState(dict(BASE.links), BASE.addresses, BASE.default_routes)
    apply(BASE, LinkGone(2))
    assert before == BASE


def test_link_deletion_drops_its_addresses_and_routes() -> None:
    state = apply(BASE, LinkGone(2))
    assert set(state.links) == {3}
    assert not state.addresses
    assert state.default_routes == {route4(3, 200, "198.51.100.1")}


def test_link_down_drops_only_its_ipv4_routes_like_fib_disable_ip() -> None:
    state = apply(BASE, LinkSeen(Link(2, "eth0", False)))
    assert route4(2, 100) not in state.default_routes
    assert state.best_default_route(Family.IPV6) is not None
    assert state.best_default_route(Family.IPV4) == route4(3, 200, "198.51.100.1")


def test_rename_keeps_routes_and_addresses() -> None:
    state = apply(BASE, LinkSeen(Link(2, "wan0", True)))
    assert state.link_by_name("wan0") == Link(2, "wan0", True)
    assert state.addresses == BASE.addresses
    assert state.default_routes == BASE.default_routes


def test_dad_completion_updates_the_address_in_place() -> None:
    state = apply(BASE, AddressSeen(Address(2, V6("2001:db8::10"), 64, 0, False)))
    ipv6 = [a for a in state.addresses if a.family is Family.IPV6]
    assert ipv6 == [Address(2, V6("2001:db8::10"), 64, 0, False)]


def test_losing_the_last_ipv4_address_flushes_ipv4_routes() -> None:
    state = apply(BASE, AddressSeen(addr4(2, 11)))
    state = apply(state, AddressGone(addr4(2, 10)))
    assert route4(2, 100) in state.default_routes
    state = apply(state, AddressGone(addr4(2, 11)))
    assert route4(2, 100) not in state.default_routes


def test_replace_drops_the_route_with_the_same_family_and_metric() -> None:
    new = route4(3, 100, "198.51.100.1")
    state = apply(BASE, RouteSeen(new, replace=True))
    assert route4(2, 100) not in state.default_routes
    assert state.best_default_route(Family.IPV4) == new


def test_best_route_prefers_the_lowest_metric() -> None:
    state = apply(BASE, RouteSeen(route4(3, 50, "198.51.100.1")))
    assert state.best_default_route(Family.IPV4) == route4(3, 50, "198.51.100.1")
    state = apply(state, RouteGone(route4(3, 50, "198.51.100.1")))
    assert state.best_default_route(Family.IPV4) == route4(2, 100)


def test_a_linkdown_route_is_never_the_best() -> None:
    dead = DefaultRoute(Family.IPV6, 3, 10, V6("2001:db8::1"), linkdown=True)
    state = apply(BASE, RouteSeen(dead))
    assert state.best_default_route(Family.IPV6) == BASE.best_default_route(Family.IPV6)
    assert not state.has_default_route(3, Family.IPV6)


def test_carrier_loss_flags_the_links_routes_linkdown_and_its_return_clears_them() -> None:
    # The kernel flips RTNH_F_LINKDOWN on both families without a route notification.
    state = apply(BASE, LinkSeen(Link(2, "eth0", True, carrier=False)))
    assert all(route.linkdown for route in state.default_routes if route.ifindex == 2)
    assert state.best_default_route(Family.IPV4) == route4(3, 200, "198.51.100.1")
    assert state.best_default_route(Family.IPV6) is None
    state = apply(state, LinkSeen(Link(2, "eth0", True, carrier=True)))
    assert state.default_routes == BASE.default_routes
    assert state.best_default_route(Family.IPV4) == route4(2, 100)


@dataclass
class Kernel:
    """A tiny model of the kernel's tables, emitting the notifications the real one sends.

    Silent removals (no notification) follow net/ipv4/fib_frontend.c: IPv4
    routes go with admin down and with the last IPv4 address; a deleted link
    takes everything with it; a replaced route gets no RTM_DELROUTE.
    """

    links: dict[int, Link] = field(default_factory=dict)
    addresses: set[Address] = field(default_factory=set)
    routes: set[DefaultRoute] = field(default_factory=set)
    events: list[NetEvent] = field(default_factory=list)

    def dump(self) -> list[NetEvent]:
        return [
            *(LinkSeen(link) for link in self.links.values()),
            *(AddressSeen(a) for a in self.addresses),
            *(RouteSeen(r) for r in self.routes),
        ]

    def flush_ipv4(self, ifindex: int) -> None:
        self.routes = {r for r in self.routes if r.ifindex != ifindex or r.family is Family.IPV6}

    def set_link(self, ifindex: int, name: str, up: bool, carrier: bool = True) -> None:
        old = self.links.get(ifindex)
        if old is not None and old.up and not up:
            self.flush_ipv4(ifindex)
            for route in [r for r in self.routes if r.ifindex == ifindex]:
                self.routes.discard(route)  # IPv6 announces these deletions
                self.events.append(RouteGone(route))
        # RTNH_F_LINKDOWN follows the carrier silently, on both families.
        self.routes = {
            dataclasses.replace(r, linkdown=not carrier) if r.ifindex == ifindex else r
            for r in self.routes
        }
        self.links[ifindex] = Link(ifindex, name, up, carrier)
        self.events.append(LinkSeen(self.links[ifindex]))

    def del_link(self, ifindex: int) -> None:
        if self.links.pop(ifindex, None) is None:
            return
        self.addresses = {a for a in self.addresses if a.ifindex != ifindex}
        self.routes = {r for r in self.routes if r.ifindex != ifindex}
        self.events.append(LinkGone(ifindex))

    def set_address(self, address: Address) -> None:
        if address.ifindex not in self.links:
            return
        key = (address.ifindex, address.address, address.prefixlen)
        self.addresses = {
            a for a in self.addresses if (a.ifindex, a.address, a.prefixlen) != key
        } | {address}
        self.events.append(AddressSeen(address))

    def del_address(self, address: Address) -> None:
        if address not in self.addresses:
            return
        self.addresses.discard(address)
        self.events.append(AddressGone(address))
        if address.family is Family.IPV4 and not any(
            a.ifindex == address.ifindex and a.family is Family.IPV4 for a in self.addresses
        ):
            self.flush_ipv4(address.ifindex)

    def add_route(self, route: DefaultRoute, replace: bool) -> None:
        link = self.links.get(route.ifindex)
        if link is None or not link.up:
            return
        if route.family is Family.IPV4 and not any(
            a.ifindex == route.ifindex and a.family is Family.IPV4 for a in self.addresses
        ):
            return  # the kernel refuses a gateway it cannot reach
        route = dataclasses.replace(route, linkdown=not link.carrier)
        if replace:
            self.routes = {
                r for r in self.routes if (r.family, r.metric) != (route.family, route.metric)
            }
        elif self.find_route(route) is not None:
            return  # EEXIST
        self.routes.add(route)
        self.events.append(RouteSeen(route, replace))

    def find_route(self, route: DefaultRoute) -> DefaultRoute | None:
        """The kernel's route of that identity, whatever its flags."""
        key = (route.family, route.ifindex, route.metric, route.gateway)
        return next(
            (r for r in self.routes if (r.family, r.ifindex, r.metric, r.gateway) == key), None
        )

    def del_route(self, route: DefaultRoute) -> None:
        found = self.find_route(route)
        if found is not None:
            self.routes.discard(found)
            self.events.append(RouteGone(found))  # RTM_DELROUTE carries the current flags


IFINDEXES = st.integers(1, 3)
ADDRESSES = st.builds(
    Address,
    ifindex=IFINDEXES,
    address=st.sampled_from([V4("192.0.2.10"), V4("198.51.100.10"), V6("2001:db8::10")]),
    prefixlen=st.just(24),
    scope=st.sampled_from([0, 253]),
    tentative=st.booleans(),
)
ROUTES = st.builds(
    DefaultRoute,
    family=st.sampled_from(Family),
    ifindex=IFINDEXES,
    metric=st.sampled_from([0, 100, 200]),
)
OPERATIONS = st.one_of(
    st.tuples(
        st.just("link"), IFINDEXES, st.sampled_from(["a", "b"]), st.booleans(), st.booleans()
    ),
    st.tuples(st.just("del_link"), IFINDEXES),
    st.tuples(st.just("addr"), ADDRESSES),
    st.tuples(st.just("del_addr"), ADDRESSES),
    st.tuples(st.just("route"), ROUTES, st.booleans()),
    st.tuples(st.just("del_route"), ROUTES),
)


def run(kernel: Kernel, operation: tuple[object, ...]) -> None:
    match operation:
        case ("link", int(ifindex), str(name), bool(up), bool(carrier)):
            kernel.set_link(ifindex, name, up, carrier)
        case ("del_link", int(ifindex)):
            kernel.del_link(ifindex)
        case ("addr", Address() as address):
            kernel.set_address(address)
        case ("del_addr", Address() as address):
            kernel.del_address(address)
        case ("route", DefaultRoute() as route, bool(replace)):
            kernel.add_route(route, replace)
        case ("del_route", DefaultRoute() as route):
            kernel.del_route(route)


CARRIER_LOST = [
    ("link", 1, "a", True, True),
    ("route", DefaultRoute(Family.IPV6, 1, 0), False),
    ("link", 1, "a", True, False),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(OPERATIONS, max_size=40), st.integers(0, 40))
@example(CARRIER_LOST, 0)  # random lists rarely lose a carrier under a route
def test_events_then_redump_agree(operations: list[tuple[object, ...]], cut: int) -> None:
    """Folding the notifications equals rebuilding from a dump, wherever the dump starts."""
    kernel = Kernel()
    for operation in operations[:cut]:
        run(kernel, operation)
    started = apply_all(NetState(), kernel.dump())
    kernel.events.clear()
    for operation in operations[cut:]:
        run(kernel, operation)
    followed = apply_all(started, kernel.events)
    assert followed == apply_all(NetState(), kernel.dump())


@settings(max_examples=300, deadline=None)
@given(st.lists(OPERATIONS, max_size=40), st.integers(0, 40), st.integers(0, 40))
def test_notifications_queued_during_a_dump_replay_onto_it(
    operations: list[tuple[object, ...]], subscribed: int, dumped: int
) -> None:
    """What the watcher does at start: notifications from the subscription on,
    some already reflected by the (later) dump, are replayed on top of it."""
    dumped = max(subscribed, dumped)
    kernel = Kernel()
    for operation in operations[:subscribed]:
        run(kernel, operation)
    kernel.events.clear()
    for operation in operations[subscribed:dumped]:
        run(kernel, operation)
    snapshot = apply_all(NetState(), kernel.dump())
    for operation in operations[dumped:]:
        run(kernel, operation)
    assert apply_all(snapshot, kernel.events) == apply_all(NetState(), kernel.dump())
