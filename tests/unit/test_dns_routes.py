"""DnsRoutes: the routed plan kept one change at a time always equals routed_plan() from scratch."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority
from netpathd.model.dns_index import DnsIndex
from netpathd.model.dns_plan import DnsMode
from netpathd.model.dns_routes import DnsRoutes
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.netstate import apply
from netpathd.model.split_dns import routed_plan
from tests.unit.test_dns_index import START, Change, changes


def from_scratch(index: DnsIndex, mode: DnsMode) -> object:
    return routed_plan(index.connections, index.result, index.state, mode)


@settings(max_examples=600, deadline=None)
@given(st.lists(changes, max_size=30), st.sampled_from(DnsMode), st.integers(1, 3))
def test_any_sequence_of_changes_gives_the_plan_from_scratch(
    steps: list[Change], mode: DnsMode, every: int
) -> None:
    """Set, remove, global priority, link and default-route changes, read now and then."""
    index = DnsIndex()
    index.update_state(START)
    routes = DnsRoutes()
    state = START
    for number, (kind, value) in enumerate(steps):
        if kind == "put" and isinstance(value, DnsConnection):
            index.put(value)
        elif kind == "remove" and isinstance(value, str):
            index.remove(value)
        elif kind == "net":
            state = apply(state, value)  # type: ignore[arg-type]
            index.update_state(state)
        elif kind == "global" and isinstance(value, GlobalDnsPriority):
            index.set_global_priority(value)
        else:
            state = NetState(
                links={i: dataclasses.replace(link) for i, link in state.links.items()},
                addresses=frozenset(state.addresses),
                default_routes=frozenset(state.default_routes),
            )
            index.update_state(state)
        if number % every == 0:  # several changes between two reads are one journal
            assert routes.plan(index, mode) == from_scratch(index, mode)
    assert routes.plan(index, mode) == from_scratch(index, mode)


def site_connection(i: int) -> DnsConnection:
    """Connection ``c<i>`` on ``eth<i>``: server 192.0.2.<i>, domain site<i>.example."""
    return DnsConnection(
        f"c{i}",
        f"eth{i}",
        "ethernet",
        DnsFamilyConfig((ipaddress.ip_address(f"192.0.2.{i}"),), (f"site{i}.example",)),
        created_seq=i,
    )


def test_a_plan_follows_a_new_index_from_scratch() -> None:
    """DnsManager replaces its index at a reload: the first read of a new one takes it all."""
    links = {1: Link(1, "eth1", up=True), 2: Link(2, "eth2", up=True)}
    conns = [site_connection(i) for i in (1, 2)]
    routes = DnsRoutes()
    first = DnsIndex()
    first.update_state(NetState(links=links))
    for conn in conns:
        first.put(conn)
    routes.plan(first, DnsMode.DNSMASQ)
    second = DnsIndex()
    second.update_state(
        NetState(links=links, default_routes=frozenset({DefaultRoute(Family.IPV4, 2, 10)}))
    )
    second.put(conns[1])
    assert routes.plan(second, DnsMode.DNSMASQ) == from_scratch(second, DnsMode.DNSMASQ)


def test_a_change_to_one_connection_keeps_the_other_routes_and_links() -> None:
    """The point of following: what did not change is the same object as before."""
    size = 6
    index = DnsIndex()
    links = {i: Link(i, f"eth{i}", up=True) for i in range(1, size)}
    default = frozenset({DefaultRoute(Family.IPV4, 1, 10)})  # "." stays with c1 alone
    index.update_state(NetState(links=links, default_routes=default))
    conns = [site_connection(i) for i in range(1, size)]
    for conn in conns:
        index.put(conn)
    routes = DnsRoutes()
    before = routes.plan(index, DnsMode.SYSTEMD_RESOLVED)
    index.put(dataclasses.replace(conns[2], ipv4=dataclasses.replace(conns[2].ipv4, priority=7)))
    after = routes.plan(index, DnsMode.SYSTEMD_RESOLVED)
    assert after == from_scratch(index, DnsMode.SYSTEMD_RESOLVED)
    rebuilt = {r.domain for r in after.routes if not any(r is old for old in before.routes)}
    assert rebuilt == {"site3.example"}
    assert all(new is old for new, old in zip(after.links, before.links, strict=True))
