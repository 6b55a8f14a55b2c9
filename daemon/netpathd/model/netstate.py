"""Pure reducers that fold rtnetlink changes into a `NetState`.

The rtnetlink adapter translates every kernel message into one of the events
below and folds it in with `apply`; a dump is the same fold started from an
empty `NetState`, so an event stream and a re-dump always agree (the unit
tests check exactly that).

The kernel removes some IPv4 routes without telling anyone, and the reducers
replay those rules so the state does not keep routes the kernel has dropped:

* a link that goes administratively down, and one that loses its last IPv4
  address, has its IPv4 routes flushed silently (`fib_disable_ip()` from
  `fib_netdev_event()` / `fib_inetaddr_event()` in net/ipv4/fib_frontend.c);
  IPv6 sends RTM_DELROUTE for the same routes, so it needs no rule;
* a deleted link takes its addresses and routes with it, again without
  notifications for IPv4 and, since `rt6_sync_down_dev()` skips them on
  NETDEV_UNREGISTER, without them for IPv6 either;
* `ip route replace` (NLM_F_REPLACE) announces only the new route: the one
  with the same family and metric that it replaced gets no RTM_DELROUTE.

Not replayed: an IPv4 route whose preferred source (`src`) address is removed
while other IPv4 addresses stay on the link (`fib_sync_down_addr()`); netpathd
does not track the preferred source, and the next resync corrects it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState


@dataclass(frozen=True, slots=True)
class LinkSeen:
    """RTM_NEWLINK: a link appeared or changed (name, IFF_UP)."""

    link: Link


@dataclass(frozen=True, slots=True)
class LinkGone:
    """RTM_DELLINK: the link and everything on it is gone."""

    ifindex: int


@dataclass(frozen=True, slots=True)
class AddressSeen:
    """RTM_NEWADDR: an address appeared or its flags changed (DAD finished)."""

    address: Address


@dataclass(frozen=True, slots=True)
class AddressGone:
    """RTM_DELADDR."""

    address: Address


@dataclass(frozen=True, slots=True)
class RouteSeen:
    """RTM_NEWROUTE of a main-table default route; `replace` mirrors NLM_F_REPLACE."""

    route: DefaultRoute
    replace: bool = False


@dataclass(frozen=True, slots=True)
class RouteGone:
    """RTM_DELROUTE of a main-table default route."""

    route: DefaultRoute


NetEvent = LinkSeen | LinkGone | AddressSeen | AddressGone | RouteSeen | RouteGone


def _address_key(address: Address) -> tuple[int, object, int]:
    """The kernel identifies an address by link, address and prefix length."""
    return (address.ifindex, address.address, address.prefixlen)


def _drop_ipv4_routes(routes: frozenset[DefaultRoute], ifindex: int) -> frozenset[DefaultRoute]:
    return frozenset(
        route for route in routes if not (route.ifindex == ifindex and route.family is Family.IPV4)
    )


def _apply_link(state: NetState, link: Link) -> NetState:
    links = dict(state.links)
    links[link.ifindex] = link
    routes = state.default_routes
    previous = state.links.get(link.ifindex)
    if previous is not None and previous.up and not link.up:
        routes = _drop_ipv4_routes(routes, link.ifindex)
    return NetState(links=links, addresses=state.addresses, default_routes=routes)


def _remove_link(state: NetState, ifindex: int) -> NetState:
    links = {index: link for index, link in state.links.items() if index != ifindex}
    return NetState(
        links=links,
        addresses=frozenset(a for a in state.addresses if a.ifindex != ifindex),
        default_routes=frozenset(r for r in state.default_routes if r.ifindex != ifindex),
    )


def _apply_address(state: NetState, address: Address) -> NetState:
    key = _address_key(address)
    kept = frozenset(a for a in state.addresses if _address_key(a) != key)
    return NetState(
        links=state.links, addresses=kept | {address}, default_routes=state.default_routes
    )


def _remove_address(state: NetState, address: Address) -> NetState:
    key = _address_key(address)
    kept = frozenset(a for a in state.addresses if _address_key(a) != key)
    routes = state.default_routes
    last_ipv4 = address.family is Family.IPV4 and not any(
        a.ifindex == address.ifindex and a.family is Family.IPV4 for a in kept
    )
    if last_ipv4:
        routes = _drop_ipv4_routes(routes, address.ifindex)
    return NetState(links=state.links, addresses=kept, default_routes=routes)


def _apply_route(state: NetState, route: DefaultRoute, replace: bool) -> NetState:
    routes = state.default_routes
    if replace:
        routes = frozenset(
            r for r in routes if not (r.family is route.family and r.metric == route.metric)
        )
    return NetState(links=state.links, addresses=state.addresses, default_routes=routes | {route})


def _remove_route(state: NetState, route: DefaultRoute) -> NetState:
    return NetState(
        links=state.links,
        addresses=state.addresses,
        default_routes=state.default_routes - {route},
    )


def apply(state: NetState, event: NetEvent) -> NetState:
    """The state after one kernel change; `state` itself is never modified."""
    match event:
        case LinkSeen(link):
            return _apply_link(state, link)
        case LinkGone(ifindex):
            return _remove_link(state, ifindex)
        case AddressSeen(address):
            return _apply_address(state, address)
        case AddressGone(address):
            return _remove_address(state, address)
        case RouteSeen(route, replace):
            return _apply_route(state, route, replace)
        case RouteGone(route):
            return _remove_route(state, route)


def apply_all(state: NetState, events: Iterable[NetEvent]) -> NetState:
    for event in events:
        state = apply(state, event)
    return state
