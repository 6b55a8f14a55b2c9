"""The DNS ordering rules of NetworkManager's dns-priority, one test per rule."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from netpathd.model.dns import (
    DnsConnection,
    DnsEntry,
    DnsFamilyConfig,
    DnsResult,
    GlobalDnsPriority,
    Rank,
    Status,
    order,
)
from netpathd.model.links import DefaultRoute, Family, Link, NetState

V4 = Family.IPV4
V6 = Family.IPV6
NO_GLOBAL = GlobalDnsPriority()


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def state(
    *names: str, down: tuple[str, ...] = (), default: dict[str, Family] | None = None
) -> NetState:
    links = {index: Link(index, name, name not in down) for index, name in enumerate(names, 1)}
    by_name = {link.name: link.ifindex for link in links.values()}
    routes = frozenset(
        DefaultRoute(family, by_name[name], 100) for name, family in (default or {}).items()
    )
    return NetState(links=links, default_routes=routes)


def conn(
    name: str,
    ifname: str,
    seq: int,
    *,
    kind: str = "ethernet",
    v4: tuple[str, ...] = (),
    v6: tuple[str, ...] = (),
    p4: int = 0,
    p6: int = 0,
    search4: tuple[str, ...] = (),
    options4: tuple[str, ...] = (),
    options6: tuple[str, ...] = (),
) -> DnsConnection:
    return DnsConnection(
        name=name,
        interface_name=ifname,
        type=kind,
        ipv4=DnsFamilyConfig(tuple(ip(s) for s in v4), search4, options4, p4),
        ipv6=DnsFamilyConfig(tuple(ip(s) for s in v6), (), options6, p6),
        created_seq=seq,
    )


def entry_of(result: DnsResult, name: str, family: Family = V4) -> DnsEntry:
    return next(e for e in result.entries if e.connection == name and e.family is family)


def test_lower_priority_first() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), p4=20)
    b = conn("b", "eth1", 1, v4=("192.0.2.2",), p4=10)
    result = order([a, b], state("eth0", "eth1"), NO_GLOBAL)
    assert result.nameservers == ("192.0.2.2", "192.0.2.1")


def test_default_priorities_vpn_50_before_device_100() -> None:
    eth = conn("eth", "eth0", 0, v4=("192.0.2.1",))
    vpn = conn("vpn", "tun0", 1, kind="vpn", v4=("198.51.100.1",))
    result = order([eth, vpn], state("eth0", "tun0"), NO_GLOBAL)
    assert result.nameservers == ("198.51.100.1", "192.0.2.1")
    assert entry_of(result, "vpn").priority == 50
    assert entry_of(result, "vpn").priority_source == "vpn default"
    assert entry_of(result, "eth").priority == 100
    assert entry_of(result, "eth").priority_source == "default"


def test_wireguard_defaults_to_50() -> None:
    wg = conn("wg", "wg0", 1, kind="wireguard", v4=("198.51.100.1",))
    result = order([wg], state("wg0"), NO_GLOBAL)
    assert entry_of(result, "wg").priority == 50
    assert entry_of(result, "wg").rank is Rank.VPN


def test_global_default_applies_to_devices_and_wireguard_not_plugin_vpn() -> None:
    eth = conn("eth", "eth0", 0, v4=("192.0.2.1",))
    wg = conn("wg", "wg0", 1, kind="wireguard", v4=("198.51.100.1",))
    vpn = conn("vpn", "tun0", 2, kind="vpn", v4=("203.0.113.1",))
    result = order([eth, wg, vpn], state("eth0", "wg0", "tun0"), GlobalDnsPriority(30, 0))
    assert (entry_of(result, "eth").priority, entry_of(result, "eth").priority_source) == (
        30,
        "global default",
    )
    assert entry_of(result, "wg").priority == 30
    assert entry_of(result, "vpn").priority == 50
    # eth and wg tie at 30: the VPN rank puts wg first; the plugin VPN at 50 comes last.
    assert result.nameservers == ("198.51.100.1", "192.0.2.1", "203.0.113.1")
    # The global default is per family: IPv6 keeps the built-in defaults.
    assert entry_of(result, "eth", V6).priority == 100


def test_connection_priority_beats_global_default_and_vpn_default() -> None:
    eth = conn("eth", "eth0", 0, v4=("192.0.2.1",), p4=7)
    vpn = conn("vpn", "tun0", 1, kind="vpn", v4=("198.51.100.1",), p4=200)
    result = order([eth, vpn], state("eth0", "tun0"), GlobalDnsPriority(30, 30))
    assert entry_of(result, "eth").priority == 7
    assert entry_of(result, "vpn").priority == 200
    assert result.nameservers == ("192.0.2.1", "198.51.100.1")


def test_tie_vpn_before_default_route_before_other() -> None:
    other = conn("other", "eth1", 0, v4=("192.0.2.3",), p4=10)
    best = conn("best", "eth0", 1, v4=("192.0.2.2",), p4=10)
    vpn = conn("vpn", "tun0", 2, kind="vpn", v4=("192.0.2.1",), p4=10)
    result = order(
        [other, best, vpn], state("eth0", "eth1", "tun0", default={"eth0": V4}), NO_GLOBAL
    )
    assert result.nameservers == ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    assert [entry_of(result, n).rank for n in ("vpn", "best", "other")] == [
        Rank.VPN,
        Rank.DEFAULT_ROUTE,
        Rank.OTHER,
    ]
    assert entry_of(result, "best").reason == (
        "default-route (eth0 holds the best IPv4 default route, metric 100)"
    )


def test_default_route_rank_is_per_family() -> None:
    a = conn("a", "eth0", 0, v6=("2001:db8::1",))
    b = conn("b", "eth1", 1, v6=("2001:db8::2",))
    # eth1 holds only the IPv4 default route, so IPv6 falls back to creation order.
    result = order([a, b], state("eth0", "eth1", default={"eth1": V4}), NO_GLOBAL)
    assert result.nameservers == ("2001:db8::1", "2001:db8::2")
    result = order([a, b], state("eth0", "eth1", default={"eth1": V6}), NO_GLOBAL)
    assert result.nameservers == ("2001:db8::2", "2001:db8::1")


def test_full_tie_follows_creation_order_ipv4_before_ipv6() -> None:
    late = conn("late", "eth0", 5, v4=("192.0.2.5",), v6=("2001:db8::5",))
    early = conn("early", "eth1", 2, v4=("192.0.2.2",), v6=("2001:db8::2",))
    result = order([late, early], state("eth0", "eth1"), NO_GLOBAL)
    assert result.nameservers == ("192.0.2.2", "2001:db8::2", "192.0.2.5", "2001:db8::5")


def test_negative_lowest_priority_keeps_only_that_value() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), p4=-5)
    b = conn("b", "eth1", 1, v4=("192.0.2.2",), p4=-5)
    c = conn("c", "eth2", 2, v4=("192.0.2.3",), p4=-1, v6=("2001:db8::3",))
    result = order([a, b, c], state("eth0", "eth1", "eth2"), NO_GLOBAL)
    assert result.nameservers == ("192.0.2.1", "192.0.2.2")
    excluded = entry_of(result, "c")
    assert excluded.status is Status.EXCLUDED
    assert excluded.reason == "excluded by negative priority -5 of a IPv4"
    assert entry_of(result, "c", V6).status is Status.EXCLUDED


def test_positive_lowest_priority_excludes_nothing() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), p4=1)
    b = conn("b", "eth1", 1, v4=("192.0.2.2",), p4=1000)
    assert order([a, b], state("eth0", "eth1"), NO_GLOBAL).nameservers == (
        "192.0.2.1",
        "192.0.2.2",
    )


def test_negative_priority_without_dns_data_excludes_in_both_orders() -> None:
    empty = conn("empty", "eth0", 0, p4=-10)
    full = conn("full", "eth1", 1, v4=("192.0.2.2",))
    for seqs in ((0, 1), (1, 0)):
        e = DnsConnection(empty.name, "eth0", "ethernet", empty.ipv4, empty.ipv6, seqs[0])
        f = DnsConnection(full.name, "eth1", "ethernet", full.ipv4, full.ipv6, seqs[1])
        for connections in ([e, f], [f, e]):
            result = order(connections, state("eth0", "eth1"), NO_GLOBAL)
            assert result.nameservers == ()
            assert entry_of(result, "empty").status is Status.NO_DNS_DATA
            assert entry_of(result, "full").status is Status.EXCLUDED


def test_inactive_connections_are_skipped_and_do_not_exclude() -> None:
    gone = conn("gone", "eth9", 0, v4=("192.0.2.9",), p4=-1)
    down = conn("down", "eth1", 1, v4=("192.0.2.8",), p4=-1)
    up = conn("up", "eth0", 2, v4=("192.0.2.1",))
    result = order([gone, down, up], state("eth0", "eth1", down=("eth1",)), NO_GLOBAL)
    assert result.nameservers == ("192.0.2.1",)
    assert entry_of(result, "gone").status is Status.INACTIVE
    assert entry_of(result, "gone").reason == "interface eth9 does not exist"
    assert entry_of(result, "down").reason == "interface eth1 is down"
    assert entry_of(result, "down").rank is None


def test_nameservers_deduplicated_first_position_wins() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1", "192.0.2.2"))
    b = conn("b", "eth1", 1, v4=("192.0.2.2", "192.0.2.3", "192.0.2.1"))
    result = order([a, b], state("eth0", "eth1"), NO_GLOBAL)
    assert result.nameservers == ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    assert entry_of(result, "b").servers == ("192.0.2.3",)
    assert entry_of(result, "b").duplicates == ("192.0.2.2", "192.0.2.1")


def test_ipv6_link_local_written_with_interface_and_mapped_as_ipv4() -> None:
    a = conn("a", "eth0", 0, v6=("fe80::1", "::ffff:192.0.2.1", "2001:db8::1"))
    b = conn("b", "eth1", 1, v6=("fe80::1",), v4=("192.0.2.1",))
    result = order([a, b], state("eth0", "eth1"), NO_GLOBAL)
    assert result.nameservers == ("fe80::1%eth0", "192.0.2.1", "2001:db8::1", "fe80::1%eth1")


def test_search_domains_dedup_and_routing_only_left_out() -> None:
    a = conn("a", "eth0", 0, search4=("example.com", "~corp.example", "~."))
    b = conn("b", "eth1", 1, search4=("example.net", "example.com"))
    result = order([a, b], state("eth0", "eth1"), NO_GLOBAL)
    assert result.searches == ("example.com", "example.net")


def test_options_merge_by_name_first_value_wins() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), options4=("ndots:2", "rotate"))
    b = conn("b", "eth1", 1, v4=("192.0.2.2",), options4=("ndots:5", "edns0", "rotate"))
    result = order([a, b], state("eth0", "eth1"), NO_GLOBAL)
    assert result.options == ("ndots:2", "rotate", "edns0")


def test_trust_ad_only_when_every_entry_with_servers_has_it() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), options4=("trust-ad", "edns0"))
    b = conn("b", "eth1", 1, v4=("192.0.2.2",), options4=("trust-ad",))
    # An entry without servers has no say (merge_one_l3cd()).
    c = conn("c", "eth2", 2, options4=("rotate",))
    links = state("eth0", "eth1", "eth2")
    assert order([a, b, c], links, NO_GLOBAL).options == ("edns0", "rotate", "trust-ad")
    d = conn("d", "eth2", 2, v4=("192.0.2.3",))
    assert order([a, b, d], links, NO_GLOBAL).options == ("edns0",)
    # An excluded entry does not vote either.
    e = conn("e", "eth2", 2, v4=("192.0.2.3",), p4=500)
    neg = [
        DnsConnection(
            "a", "eth0", "ethernet", DnsFamilyConfig(a.ipv4.servers, (), ("trust-ad",), -1)
        )
    ]
    assert order([*neg, e], links, NO_GLOBAL).options == ("trust-ad",)


def test_ipv6_entry_votes_on_trust_ad_too() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",), options4=("trust-ad",), v6=("2001:db8::1",))
    assert order([a], state("eth0"), NO_GLOBAL).options == ()
    b = conn(
        "b", "eth0", 0, v4=("192.0.2.1",), options4=("trust-ad",), v6=("2001:db8::1",),
        options6=("trust-ad",),
    )  # fmt: skip
    assert order([b], state("eth0"), NO_GLOBAL).options == ("trust-ad",)


def test_more_than_three_servers_are_all_kept() -> None:
    a = conn("a", "eth0", 0, v4=tuple(f"192.0.2.{i}" for i in range(1, 6)))
    assert len(order([a], state("eth0"), NO_GLOBAL).nameservers) == 5


def test_explain_lists_every_candidate_in_order() -> None:
    vpn = conn("vpn", "tun0", 0, kind="vpn", v4=("198.51.100.1",))
    eth = conn("eth", "eth0", 1, v4=("192.0.2.1",), p4=-1)
    gone = conn("gone", "eth7", 2, v4=("192.0.2.7",))
    result = order([vpn, eth, gone], state("eth0", "tun0", default={"eth0": V4}), NO_GLOBAL)
    assert result.explain() == (
        "eth (eth0) IPv4: priority -1 (connection), rank default-route, used: "
        "default-route (eth0 holds the best IPv4 default route, metric 100)",
        "vpn (tun0) IPv4: priority 50 (vpn default), rank vpn, "
        "excluded-by-negative-priority: excluded by negative priority -1 of eth IPv4",
        "vpn (tun0) IPv6: priority 50 (vpn default), rank vpn, "
        "excluded-by-negative-priority: excluded by negative priority -1 of eth IPv4",
        "eth (eth0) IPv6: priority 100 (default), rank other, "
        "excluded-by-negative-priority: excluded by negative priority -1 of eth IPv4",
        "gone (eth7) IPv4: priority 100 (default), rank -, inactive: interface eth7 does not exist",
        "gone (eth7) IPv6: priority 100 (default), rank -, inactive: interface eth7 does not exist",
    )


def test_explain_no_dns_data() -> None:
    a = conn("a", "eth0", 0, v4=("192.0.2.1",))
    result = order([a], state("eth0"), NO_GLOBAL)
    v6 = entry_of(result, "a", V6)
    assert v6.status is Status.NO_DNS_DATA
    assert v6.reason == "other (neither VPN nor the best default route); no DNS data"
    assert not v6.included
    assert entry_of(result, "a").included


# -- properties ---------------------------------------------------------------------------

IFNAMES = ("eth0", "eth1", "eth2", "tun0")
SERVERS = ("192.0.2.1", "192.0.2.2", "198.51.100.1", "2001:db8::1", "fe80::1")
TYPES = ("ethernet", "vpn", "wireguard")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[DnsConnection], NetState, GlobalDnsPriority]:
    count = draw(st.integers(1, 6))
    seqs = draw(st.lists(st.integers(0, 100), min_size=count, max_size=count, unique=True))
    priorities = st.sampled_from((0, 0, -3, -1, 10, 50, 100))
    connections = []
    for index, seq in enumerate(seqs):
        servers = st.lists(st.sampled_from(SERVERS), max_size=3)
        v4 = tuple(ip(s) for s in draw(servers) if ":" not in s)
        v6 = tuple(ip(s) for s in draw(servers) if ":" in s)
        connections.append(
            DnsConnection(
                name=f"c{index}",
                interface_name=draw(st.sampled_from(IFNAMES)),
                type=draw(st.sampled_from(TYPES)),
                ipv4=DnsFamilyConfig(v4, priority=draw(priorities)),
                ipv6=DnsFamilyConfig(v6, priority=draw(priorities)),
                created_seq=seq,
            )
        )
    present = draw(st.lists(st.sampled_from(IFNAMES), unique=True))
    down = tuple(draw(st.lists(st.sampled_from(IFNAMES), unique=True)))
    default = {name: draw(st.sampled_from(Family)) for name in present[:1]}
    global_priority = GlobalDnsPriority(draw(priorities), draw(priorities))
    return connections, state(*present, down=down, default=default), global_priority


@given(scenarios(), st.randoms())
def test_permuting_the_input_never_changes_the_output(
    scenario: tuple[list[DnsConnection], NetState, GlobalDnsPriority], rnd: random.Random
) -> None:
    connections, net, global_priority = scenario
    shuffled = list(connections)
    rnd.shuffle(shuffled)
    assert order(shuffled, net, global_priority) == order(connections, net, global_priority)


@given(scenarios())
def test_negative_lowest_priority_excludes_every_larger_value(
    scenario: tuple[list[DnsConnection], NetState, GlobalDnsPriority],
) -> None:
    result = order(*scenario)
    active = [e for e in result.entries if e.status is not Status.INACTIVE]
    if active and min(e.priority for e in active) < 0:
        lowest = min(e.priority for e in active)
        for entry in active:
            assert (entry.status is Status.EXCLUDED) == (entry.priority != lowest)
    else:
        assert all(e.status is not Status.EXCLUDED for e in result.entries)


@given(scenarios())
def test_servers_are_unique_and_come_from_active_entries(
    scenario: tuple[list[DnsConnection], NetState, GlobalDnsPriority],
) -> None:
    result = order(*scenario)
    assert len(set(result.nameservers)) == len(result.nameservers)
    used = [s for e in result.entries if e.status is Status.USED for s in e.servers]
    assert tuple(used) == result.nameservers
    connections, net, _ = scenario
    active_servers = set()
    for c in connections:
        link = net.link_by_name(c.interface_name)
        if link is not None and link.up:
            for server in (*c.ipv4.servers, *c.ipv6.servers):
                text = str(server)
                active_servers.add(f"{text}%{c.interface_name}" if text == "fe80::1" else text)
    assert set(result.nameservers) <= active_servers
