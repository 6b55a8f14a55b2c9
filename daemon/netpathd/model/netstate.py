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
  with the same family and metric that it replaced gets no RTM_DELROUTE;
* a carrier change flags or clears RTNH_F_LINKDOWN on the link's routes, of
  both families, without any route notification (`_mark_linkdown`).

Not replayed: an IPv4 route whose preferred source (`src`) address is removed
while other IPv4 addresses stay on the link (`fib_sync_down_addr()`); netpathd
does not track the preferred source, and the next resync corrects it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState, rank
from netpathd.model.tables import RouteTable


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


def _drop_ipv4_routes(routes: RouteTable, ifindex: int) -> RouteTable:
    for route in routes.on_link(ifindex):
        if route.family is Family.IPV4:
            routes = routes.remove(route)
    return routes


def _mark_linkdown(routes: RouteTable, ifindex: int, linkdown: bool) -> RouteTable:
    """What the kernel does silently at a carrier change: flag or clear the link's next hops.

    `fib_sync_down_dev()` / `fib_sync_up()` (net/ipv4/fib_semantics.c) and
    `rt6_sync_down_dev()` / `rt6_sync_up()` (net/ipv6/route.c) set and clear
    RTNH_F_LINKDOWN without an RTM_NEWROUTE: `ip monitor route` stays quiet
    while `ip route` starts and stops saying "linkdown" (checked on 6.18).
    """
    for route in routes.on_link(ifindex):
        if route.linkdown != linkdown:
            routes = routes.put(dataclasses.replace(route, linkdown=linkdown))
    return routes


def _carry_best(old: NetState, new: NetState, added: DefaultRoute | None = None) -> NetState:
    """Hand the memoized best routes on, unless the best route itself went away.

    Only for changes that remove routes or add `added`: nothing else became usable.
    """
    _carry_names(old, new)
    for family, best in old.best.items():
        if best is not None and not (new.route_table.find(best) == best and new.usable(best)):
            continue  # the next query scans
        candidates = (r for r in (best, added) if r and r.family is family and new.usable(r))
        new.best[family] = min(candidates, key=rank, default=None)
    return new


def _carry_names(old: NetState, new: NetState) -> None:
    """Hand the link_by_name() memo on when the links are the same: building it is O(links)."""
    if new.links is old.links and old.by_name is not None:
        object.__setattr__(new, "by_name", old.by_name)


def _apply_link(state: NetState, link: Link) -> NetState:
    previous = state.links.get(link.ifindex)
    if previous == link:
        return state
    links = dict(state.links)
    links[link.ifindex] = link
    routes = state.route_table
    if previous is not None and previous.up and not link.up:
        routes = _drop_ipv4_routes(routes, link.ifindex)
    if previous is None or previous.carrier != link.carrier:
        routes = _mark_linkdown(routes, link.ifindex, not link.carrier)
    new = NetState(links=links, addresses=state.addresses, default_routes=routes)
    if previous is not None and routes is state.route_table:
        new.best.update(state.best)  # a rename or a flag the routes do not depend on
    return new


def _remove_link(state: NetState, ifindex: int) -> NetState:
    if ifindex not in state.links and not (
        state.route_table.on_link(ifindex) or state.addresses_on(ifindex)
    ):
        return state
    links = {index: link for index, link in state.links.items() if index != ifindex}
    routes = state.route_table
    for route in routes.on_link(ifindex):
        routes = routes.remove(route)
    new = NetState(
        links=links,
        addresses=state.address_table.without_link(ifindex),
        default_routes=routes,
    )
    return _carry_best(state, new)


def _apply_address(state: NetState, address: Address) -> NetState:
    addresses = state.address_table.put(address)
    if addresses is state.addresses:
        return state
    new = NetState(links=state.links, addresses=addresses, default_routes=state.default_routes)
    new.best.update(state.best)
    _carry_names(state, new)
    return new


def _remove_address(state: NetState, address: Address) -> NetState:
    addresses = state.address_table.remove(address)
    if addresses is state.addresses:
        return state
    routes = state.route_table
    if address.family is Family.IPV4 and not addresses.has_ipv4(address.ifindex):
        routes = _drop_ipv4_routes(routes, address.ifindex)
    new = NetState(links=state.links, addresses=addresses, default_routes=routes)
    return _carry_best(state, new)


def _apply_route(state: NetState, route: DefaultRoute, replace: bool) -> NetState:
    routes = state.route_table
    if replace:
        for displaced in routes.with_metric(route.family, route.metric):
            routes = routes.remove(displaced)
    routes = routes.put(route)
    if routes is state.default_routes:
        return state
    new = NetState(links=state.links, addresses=state.addresses, default_routes=routes)
    return _carry_best(state, new, added=route)


def _remove_route(state: NetState, route: DefaultRoute) -> NetState:
    routes = state.route_table.remove(route)
    if routes is state.default_routes:
        return state
    new = NetState(links=state.links, addresses=state.addresses, default_routes=routes)
    return _carry_best(state, new)


def apply(state: NetState, event: NetEvent) -> NetState:
    """The state after one kernel change; `state` itself is never modified.

    O(1) per address or route event (amortized, on persistent tables); a link
    event costs O(links) plus the routes the kernel changes with it.
    """
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
