"""The resolvconf language: record keys, resolv.conf text and the dns-priority mapping."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from netpathd.errors import InvalidArgument
from netpathd.model import resolvconf
from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority, order
from netpathd.model.dns_settings import merge_settings
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.resolvconf import Flags, interface_of, parse_text

OPENVPN_TEXT = "domain corp.example\nnameserver 198.51.100.53\nnameserver 2001:db8::53\n"


def test_resolv_conf_lines_in_their_families() -> None:
    text = parse_text(
        "# from dhclient\n; old comment\n\nsearch a.example b.example\n"
        "nameserver 192.0.2.53\r\nnameserver 2001:db8::53\noptions ndots:2 inet6\n"
        "sortlist 192.0.2.0/255.255.255.0\n"
    )
    assert text == resolvconf.ResolvConfText(
        ipv4=("192.0.2.53",),
        ipv6=("2001:db8::53",),
        search=("a.example", "b.example"),
        options=("ndots:2", "inet6"),
    )


def test_the_last_of_domain_and_search_wins_as_in_glibc() -> None:
    assert parse_text("search a.example\ndomain b.example\n").search == ("b.example",)
    assert parse_text("domain b.example\nsearch a.example c.example\n").search == (
        "a.example",
        "c.example",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nameserver 192.0.2.53\x00\n", "line 1: control character '\\x00'"),
        ("nameserver 192.0.2.53\n" + "x" * 1_000_000, "more than 65536 characters"),
        ("search " + "a" * 5000, "line 1: longer than 4096 characters"),
        ("nameserver dns.example\n", "line 1: nameserver 'dns.example' is not an address"),
        ("nameserver 192.0.2.53 192.0.2.54\n", "line 1: nameserver takes one address"),
        ("search corp.exa\nmple.com\n", "line 2: unknown keyword 'mple.com'"),
        ("nameserver\n", "line 1: nameserver without a value"),
    ],
)
def test_malformed_text_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("\\", "\\\\").replace("(", r"\(")):
        parse_text(text)


@pytest.mark.parametrize(
    ("key", "links", "interface"),
    [
        ("tun.wg0", {"wg0"}, "wg0"),  # wg-quick with Debian's interface-order prefix
        ("wg0", {"wg0"}, "wg0"),
        ("eth0.dhclient", {"eth0"}, "eth0"),
        ("eth0.100.dhclient", {"eth0", "eth0.100"}, "eth0.100"),  # a VLAN's dotted name
        ("eth0.100", {"eth0.100"}, "eth0.100"),
        ("tun0.openvpn", set(), "tun0"),  # no such link yet: IFACE.PROTO
    ],
)
def test_the_key_names_the_link(key: str, links: set[str], interface: str) -> None:
    assert interface_of(key, links.__contains__) == interface


@pytest.mark.parametrize("key", ["", "a/b", "-a", ".hidden", "a b", "..", "a\nb", "x" * 54])
def test_keys_that_are_no_file_name_are_refused(key: str) -> None:
    with pytest.raises(InvalidArgument, match="resolvconf key"):
        resolvconf.validate_key(key)


def record(key: str, text: str, seq: int, flags: Flags, link_kind: str = "") -> DnsConnection:
    parsed = parse_text(text)
    interface = interface_of(key, lambda _: False)
    settings = resolvconf.settings(parsed, interface, flags, link_kind)
    conn = merge_settings(None, resolvconf.connection_name(key), settings, created_seq=seq)
    return dataclasses.replace(conn, metric=flags.metric)


def up(*names: str) -> NetState:
    return NetState(links={i: Link(i, name, True) for i, name in enumerate(names, 1)})


def test_exclusive_is_a_negative_priority_that_leaves_the_others_out() -> None:
    lan = DnsConnection(
        "lan", "eth0", "ethernet", ipv4=DnsFamilyConfig((ipaddress.ip_address("192.0.2.53"),))
    )
    wg = record("tun.wg0", "nameserver 198.51.100.53\n", 1, Flags(exclusive=True))
    assert wg.interface_name == "tun"  # no link wg0 in this state: IFACE.PROTO
    wg = dataclasses.replace(wg, interface_name="wg0")
    result = order([lan, wg], up("eth0", "wg0"), GlobalDnsPriority())
    assert result.nameservers == ("198.51.100.53",)
    assert wg.ipv4.priority == wg.ipv6.priority == resolvconf.EXCLUSIVE_PRIORITY


@pytest.mark.parametrize(
    ("link_kind", "conn_type"),
    [("tun", "vpn"), ("wireguard", "wireguard"), ("veth", "generic"), ("", "generic")],
)
def test_a_record_on_a_tunnel_is_a_vpns(link_kind: str, conn_type: str) -> None:
    """OpenVPN's update-resolv-conf adds ``tun0.inet`` without ``-x`` or ``-m``: its servers
    must still come before the LAN's, as both resolvconf tools and NetworkManager put them."""
    lan = DnsConnection(
        "lan", "eth0", "ethernet", ipv4=DnsFamilyConfig((ipaddress.ip_address("192.0.2.53"),))
    )
    vpn = record("tun0.inet", "nameserver 203.0.113.53\n", 1, Flags(), link_kind)
    assert vpn.type == conn_type
    state = NetState(
        links={1: Link(1, "eth0", True), 2: Link(2, "tun0", True, kind=link_kind)},
        default_routes=frozenset({DefaultRoute(Family.IPV4, 1, 100)}),
    )
    result = order([lan, vpn], state, GlobalDnsPriority())
    first = "203.0.113.53" if conn_type != "generic" else "192.0.2.53"
    assert result.nameservers[0] == first


def test_the_metric_orders_records_of_equal_priority_lower_first() -> None:
    late_low = record("b.dhcp", "nameserver 192.0.2.2\n", 2, Flags(metric=5))
    early_high = record("a.dhcp", "nameserver 192.0.2.1\n", 1, Flags(metric=10))
    result = order([early_high, late_low], up("a", "b"), GlobalDnsPriority())
    assert result.nameservers == ("192.0.2.2", "192.0.2.1")


def test_private_makes_the_domains_routing_only() -> None:
    conn = record("tun0.openvpn", OPENVPN_TEXT, 0, Flags(private=True))
    assert conn.ipv4.search == ("~corp.example",)
    result = order([conn], up("tun0"), GlobalDnsPriority())
    assert result.searches == ()
    assert result.nameservers == ("198.51.100.53", "2001:db8::53")


def test_ipv6_only_options_go_to_the_ipv6_entry() -> None:
    conn = record("e.dhcp", "nameserver 192.0.2.1\noptions inet6 ndots:3\n", 0, Flags())
    assert conn.ipv4.options == ("ndots:3",)
    assert conn.ipv6.options == ("inet6",)


@pytest.mark.parametrize(
    ("argv", "arguments"),
    [
        (["resolvconf", "-a", "wg0"], ["-a", "wg0"]),
        (
            ["--bus-address", "unix:path=/b", "resolvconf", "-l"],
            ["--bus-address=unix:path=/b", "-l"],
        ),
        (["--json", "--timeout", "3", "resolvconf", "-fd", "x"], ["-fd", "x"]),
        (["dns", "show"], None),
        (["--timeout", "resolvconf"], None),  # the value of --timeout, not the verb
    ],
)
def test_netpathctl_hands_the_words_after_resolvconf_over(
    argv: list[str], arguments: list[str] | None
) -> None:
    from netpathd.ctl.main import resolvconf_arguments  # noqa: PLC0415

    assert resolvconf_arguments(argv) == arguments


def test_options_are_read_as_getopt_reads_them() -> None:
    from netpathd.ctl.resolvconf import Usage, parse_args  # noqa: PLC0415

    request = parse_args(["-fd", "tun.wg0"])
    assert (request.command, request.key, request.force) == ("d", "tun.wg0", True)
    request = parse_args(["-a", "tun.wg0", "-m", "0", "-x"])
    assert (request.command, request.metric, request.exclusive) == ("a", 0, True)
    assert parse_args(["-l", "eth*", "wl*"]).patterns == ["eth*", "wl*"]
    for bad in (["-a"], ["-m", "-1", "-a", "x"], ["-a", "x", "-d", "x"], ["-x"], ["-d", "a/b"]):
        with pytest.raises((Usage, InvalidArgument)):
            parse_args(bad)
