"""Split DNS routing: which connection answers which domain (model.split_dns.plan)."""

from __future__ import annotations

import dataclasses
import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority
from netpathd.model.dns_plan import DEFAULT_DOMAIN, DnsMode, DnsPlan
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.split_dns import domain_key, plan

NO_GLOBAL = GlobalDnsPriority()


def net(*names: str, default: str | None = None) -> NetState:
    links = {index: Link(index, name, True) for index, name in enumerate(names, 1)}
    routes = frozenset(
        DefaultRoute(Family.IPV4, index, 100)
        for index, name in enumerate(names, 1)
        if name == default
    )
    return NetState(links=links, default_routes=routes)


def conn(
    name: str,
    ifname: str,
    seq: int,
    *,
    kind: str = "ethernet",
    servers: tuple[str, ...] = (),
    search: tuple[str, ...] = (),
    priority: int = 0,
) -> DnsConnection:
    family = DnsFamilyConfig(
        servers=tuple(ipaddress.IPv4Address(s) for s in servers), search=search, priority=priority
    )
    return DnsConnection(name, ifname, kind, ipv4=family, created_seq=seq)


def routes(result: DnsPlan) -> dict[str, str]:
    return {route.domain: route.connection for route in result.routes}


VPN = conn("corp", "tun0", 0, kind="vpn", servers=("198.51.100.53",), search=("corp.example",))
WAN = conn("wan", "eth0", 1, servers=("192.0.2.53",), search=("example.com",))


def test_the_vpn_answers_its_domain_and_the_default_route_everything_else() -> None:
    result = plan([VPN, WAN], net("eth0", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert routes(result) == {".": "wan", "corp.example": "corp", "example.com": "wan"}
    assert result.default_route is not None
    assert result.default_route.servers == ("192.0.2.53",)
    assert result.resolver.nameservers == ("127.0.0.1",)
    assert result.resolver.searches == ("corp.example", "example.com")


def test_a_shared_domain_goes_to_the_lower_priority_value_only() -> None:
    lan = conn("lan", "eth1", 2, servers=("203.0.113.53",), search=("corp.example",), priority=10)
    result = plan(
        [VPN, WAN, lan], net("eth0", "eth1", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ
    )
    (route,) = [r for r in result.routes if r.domain == "corp.example"]
    assert route.connection == "lan"
    assert [loser.connection for loser in route.losers] == ["corp"]
    assert "lower priority 10" in route.losers[0].reason


def test_equal_priorities_give_the_domain_to_the_first_in_order_only() -> None:
    first = conn("a", "eth1", 2, servers=("203.0.113.1",), search=("~corp.example",))
    second = conn("b", "eth2", 3, servers=("203.0.113.2",), search=("~corp.example",))
    result = plan([second, first], net("eth1", "eth2"), NO_GLOBAL, DnsMode.SYSTEMD_RESOLVED)
    (route,) = [r for r in result.routes if r.domain == "corp.example"]
    assert (route.connection, [loser.connection for loser in route.losers]) == ("a", ["b"])
    (link_b,) = [link for link in result.links if link.connection == "b"]
    assert ("corp.example", True) not in link_b.domains


def test_a_negative_priority_takes_everything() -> None:
    corp = dataclasses.replace(VPN, ipv4=dataclasses.replace(VPN.ipv4, priority=-5))
    result = plan([corp, WAN], net("eth0", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert routes(result) == {".": "corp", "corp.example": "corp"}


def test_a_routing_domain_never_reaches_the_search_line() -> None:
    corp = dataclasses.replace(VPN, ipv4=dataclasses.replace(VPN.ipv4, search=("~corp.example",)))
    result = plan([corp, WAN], net("eth0", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert routes(result)["corp.example"] == "corp"
    assert result.resolver.searches == ("example.com",)
    (tun,) = [link for link in result.links if link.interface_name == "tun0"]
    assert tun.domains == (("corp.example", True),)
    assert tun.default_route is False


def test_explicit_tilde_dot_takes_the_default_domain() -> None:
    corp = dataclasses.replace(VPN, ipv4=dataclasses.replace(VPN.ipv4, search=("~.",)))
    result = plan([corp, WAN], net("eth0", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert routes(result)["."] == "corp"
    (route,) = [r for r in result.routes if r.domain == "."]
    assert [loser.connection for loser in route.losers] == ["wan"]


def test_without_any_default_route_the_non_vpn_connections_take_the_default() -> None:
    result = plan([VPN, WAN], net("eth0", "tun0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert routes(result)["."] == "wan"


def test_a_parent_with_a_negative_priority_shadows_subdomains() -> None:
    parent = conn("p", "eth1", 2, servers=("203.0.113.1",), search=("~example",), priority=-1)
    child = conn("c", "eth2", 3, servers=("203.0.113.2",), search=("~a.example",), priority=-1)
    lower = conn("l", "eth0", 4, servers=("203.0.113.3",), search=("~b.example",), priority=-1)
    result = plan([parent, child, lower], net("eth0", "eth1", "eth2"), NO_GLOBAL, DnsMode.NONE)
    # Same negative priority: no shadowing among equals.
    assert routes(result)["a.example"] == "c"
    stronger = dataclasses.replace(parent, ipv4=dataclasses.replace(parent.ipv4, priority=-9))
    result = plan([stronger, child], net("eth1", "eth2"), NO_GLOBAL, DnsMode.NONE)
    assert "a.example" not in routes(result)


def test_default_mode_writes_the_ordered_servers() -> None:
    result = plan([VPN, WAN], net("eth0", "tun0", default="eth0"), NO_GLOBAL, DnsMode.DEFAULT)
    assert result.resolver.nameservers == ("198.51.100.53", "192.0.2.53")
    resolved = plan([VPN, WAN], net("eth0", "tun0"), NO_GLOBAL, DnsMode.SYSTEMD_RESOLVED)
    assert resolved.resolver.nameservers == ("127.0.0.53",)


def test_an_inactive_connection_claims_nothing() -> None:
    result = plan([VPN, WAN], net("eth0", default="eth0"), NO_GLOBAL, DnsMode.DNSMASQ)
    assert "corp.example" not in routes(result)


# -- properties ------------------------------------------------------------------------

NAMES = ("eth0", "eth1", "eth2", "tun0")
DOMAINS = ("corp.example", "~corp.example", "a.corp.example", "~example.org", "~.", "lab.test")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[DnsConnection], NetState]:
    count = draw(st.integers(1, 5))
    conns = []
    for seq in range(count):
        conns.append(
            conn(
                f"c{seq}",
                draw(st.sampled_from(NAMES)),
                seq,
                kind=draw(st.sampled_from(("ethernet", "vpn", "wireguard"))),
                servers=tuple(
                    draw(st.lists(st.sampled_from(("192.0.2.1", "192.0.2.2")), max_size=2))
                ),
                search=tuple(draw(st.lists(st.sampled_from(DOMAINS), max_size=3, unique=True))),
                priority=draw(st.sampled_from((0, 0, 10, 100, -1, -5))),
            )
        )
    default = draw(st.sampled_from((None, *NAMES)))
    return conns, net(*NAMES, default=default)


@given(scenarios())
def test_every_configured_domain_routes_to_exactly_one_connection(
    scenario: tuple[list[DnsConnection], NetState],
) -> None:
    conns, state = scenario
    result = plan(conns, state, NO_GLOBAL, DnsMode.DNSMASQ)
    domains = [route.domain for route in result.routes]
    assert len(domains) == len(set(domains))
    used = {e.connection for e in result.order.entries if e.included}
    for c in conns:
        if c.name not in used or not c.ipv4.servers:
            continue
        for domain in c.ipv4.search:
            key = domain_key(domain)
            route = next((r for r in result.routes if r.domain == key), None)
            if route is None:  # shadowed: the connection must be named where its queries go
                assert any(
                    c.name in (loser.connection for loser in r.losers) for r in result.routes
                )
                continue
            assert route.connection == c.name or c.name in [x.connection for x in route.losers]
    for link in result.links:
        for key, _ in link.domains:  # a link carries only the domains it won
            assert any(r.domain == key and r.ifindex == link.ifindex for r in result.routes)


@given(scenarios())
def test_a_negative_priority_excludes_as_in_the_ordering(
    scenario: tuple[list[DnsConnection], NetState],
) -> None:
    conns, state = scenario
    result = plan(conns, state, NO_GLOBAL, DnsMode.DNSMASQ)
    active = [e for e in result.order.entries if e.rank is not None]
    if active and active[0].priority < 0:
        assert all(route.priority == active[0].priority for route in result.routes)
    excluded = {e.connection for e in result.order.entries if e.included is False}
    included = {e.connection for e in result.order.entries if e.included}
    for route in result.routes:
        assert route.connection in included
        assert route.connection not in excluded - included


@given(scenarios(), st.randoms())
def test_the_plan_does_not_depend_on_the_order_connections_were_given(
    scenario: tuple[list[DnsConnection], NetState], rng: random.Random
) -> None:
    conns, state = scenario
    shuffled = list(conns)
    rng.shuffle(shuffled)
    assert plan(shuffled, state, NO_GLOBAL, DnsMode.DNSMASQ) == plan(
        conns, state, NO_GLOBAL, DnsMode.DNSMASQ
    )


def test_domain_key_folds_case_and_the_routing_mark() -> None:
    assert domain_key("~Corp.Example") == "corp.example"
    assert domain_key("~.") == DEFAULT_DOMAIN
