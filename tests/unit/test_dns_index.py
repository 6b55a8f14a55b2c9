"""DnsIndex: the order kept one change at a time always equals order() from scratch."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority, order
from netpathd.model.dns_index import DnsIndex
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.netstate import LinkGone, LinkSeen, NetEvent, RouteGone, RouteSeen, apply

NAMES = ("a", "b", "c", "d", "e")
IFNAMES = ("eth0", "eth1", "eth2", "tun0")
V4 = ("192.0.2.1", "192.0.2.2", "198.51.100.1")
V6 = ("2001:db8::1", "fe80::1", "::ffff:192.0.2.1")
DOMAINS = ("corp.example", "~corp.example", "example", "~.", "lab.example")
OPTIONS = ("ndots:2", "ndots:3", "trust-ad", "edns0", "rotate")
PRIORITIES = (0, 0, -5, -1, 10, 50, 100)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@st.composite
def families(draw: st.DrawFn, servers: tuple[str, ...]) -> DnsFamilyConfig:
    return DnsFamilyConfig(
        tuple(ip(s) for s in draw(st.lists(st.sampled_from(servers), max_size=3))),
        tuple(draw(st.lists(st.sampled_from(DOMAINS), max_size=2, unique=True))),
        tuple(draw(st.lists(st.sampled_from(OPTIONS), max_size=2, unique=True))),
        draw(st.sampled_from(PRIORITIES)),
    )


@st.composite
def connections(draw: st.DrawFn) -> DnsConnection:
    return DnsConnection(
        name=draw(st.sampled_from(NAMES)),
        interface_name=draw(st.sampled_from(IFNAMES)),
        type=draw(st.sampled_from(("ethernet", "vpn", "wireguard"))),
        ipv4=draw(families(V4)),
        ipv6=draw(families(V6)),
        created_seq=draw(st.integers(0, 6)),
        metric=draw(st.sampled_from((0, 0, 5))),
    )


def net_events() -> st.SearchStrategy[NetEvent]:
    ifindexes = st.integers(1, 5)
    return st.one_of(
        st.builds(
            lambda i, name, up, carrier: LinkSeen(Link(i, name, up, carrier)),
            ifindexes,
            st.sampled_from(IFNAMES),
            st.booleans(),
            st.booleans(),
        ),
        st.builds(LinkGone, ifindexes),
        st.builds(
            lambda family, i, metric, replace: RouteSeen(DefaultRoute(family, i, metric), replace),
            st.sampled_from(Family),
            ifindexes,
            st.sampled_from((10, 100, 200)),
            st.booleans(),
        ),
        st.builds(
            lambda family, i, metric: RouteGone(DefaultRoute(family, i, metric)),
            st.sampled_from(Family),
            ifindexes,
            st.sampled_from((10, 100, 200)),
        ),
    )


START = NetState(
    links={i: Link(i, name, up=True) for i, name in enumerate(IFNAMES, 1)},
    default_routes=frozenset(
        {DefaultRoute(Family.IPV4, 1, 100), DefaultRoute(Family.IPV6, 2, 100)}
    ),
)

Change = (
    tuple[str, DnsConnection]
    | tuple[str, str]
    | tuple[str, NetEvent]
    | tuple[str, GlobalDnsPriority]
    | tuple[str, None]
)

changes = st.one_of(
    st.tuples(st.just("put"), connections()),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("net"), net_events()),
    st.tuples(
        st.just("global"),
        st.builds(GlobalDnsPriority, st.sampled_from(PRIORITIES), st.sampled_from(PRIORITIES)),
    ),
    st.tuples(st.just("fresh"), st.none()),  # the same network as a new snapshot
)


@settings(max_examples=400, deadline=None)
@given(st.lists(changes, max_size=30))
def test_any_sequence_of_changes_gives_order_from_scratch(steps: list[Change]) -> None:
    index = DnsIndex()
    conns: dict[str, DnsConnection] = {}
    state = START
    index.update_state(state)
    global_priority = GlobalDnsPriority()
    for kind, value in steps:
        if kind == "put" and isinstance(value, DnsConnection):
            conns[value.name] = value
            index.put(value)
        elif kind == "remove" and isinstance(value, str):
            conns.pop(value, None)
            index.remove(value)
        elif kind == "net":
            state = apply(state, value)  # type: ignore[arg-type]
            index.update_state(state)
        elif kind == "global" and isinstance(value, GlobalDnsPriority):
            global_priority = value
            index.set_global_priority(value)
        else:
            state = NetState(
                links={i: dataclasses.replace(link) for i, link in state.links.items()},
                addresses=frozenset(state.addresses),
                default_routes=frozenset(state.default_routes),
            )
            index.update_state(state)
        assert index.result == order(conns.values(), state, global_priority)
        assert (index.nameservers, index.searches, index.options) == (
            index.result.nameservers,
            index.result.searches,
            index.result.options,
        )


def test_a_change_to_one_connection_reuses_the_other_entries() -> None:
    """The point of the index: entries that did not move are the same objects as before."""
    links = {i: Link(i, f"eth{i}", up=True) for i in range(1, 6)}
    index = DnsIndex()
    index.update_state(NetState(links=links))
    conns = [
        DnsConnection(f"c{i}", f"eth{i}", "ethernet", DnsFamilyConfig((ip(f"192.0.2.{i}"),)))
        for i in range(1, 6)
    ]
    for conn in conns:
        index.put(conn)
    before = index.result.entries
    index.put(dataclasses.replace(conns[2], metric=1))
    rebuilt = [new for new in index.result.entries if not any(new is old for old in before)]
    assert {entry.connection for entry in rebuilt} == {"c3"}
