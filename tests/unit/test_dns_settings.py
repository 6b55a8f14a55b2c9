"""Validation of nmcli-style DNS settings and the connections keyfile."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpathd.errors import ConfigError, InvalidArgument
from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority
from netpathd.model.dns_settings import (
    CONNECTION_TYPES,
    DnsConfig,
    _merged_entry_by_entry,
    make_global_priority,
    merge_settings,
    parse_connection_section,
    parse_connections_file,
    render_connections_file,
    to_settings,
)
from netpathd.model.keyfile import parse_keyfile

KNOWN_TYPES = ", ".join(sorted(CONNECTION_TYPES))
BASE: dict[str, object] = {"connection.interface-name": "eth0", "connection.type": "ethernet"}


def make(**extra: object) -> DnsConnection:
    settings = dict(BASE)
    settings.update({key.replace("_", "-").replace("-", ".", 1): v for key, v in extra.items()})
    return merge_settings(None, "office", settings, created_seq=3)


def refuse(settings: dict[str, object], message: str, name: str = "office") -> None:
    with pytest.raises(InvalidArgument) as info:
        merge_settings(None, name, {**BASE, **settings}, created_seq=0)
    assert info.value.message == message


def test_full_connection() -> None:
    conn = merge_settings(
        None,
        "office",
        {
            **BASE,
            "ipv4.dns": ["192.0.2.1", "192.0.2.2"],
            "ipv4.dns-search": ["example.com", "~corp.example", "~."],
            "ipv4.dns-options": ["ndots:02", "rotate", "trust-ad"],
            "ipv4.dns-priority": -2147483647,
            "ipv6.dns": ["fe80::1%eth0", "2001:db8::1"],
            "ipv6.dns-options": ["inet6"],
            "ipv6.dns-priority": 2147483647,
        },
        created_seq=3,
    )
    assert conn == DnsConnection(
        name="office",
        interface_name="eth0",
        type="ethernet",
        ipv4=DnsFamilyConfig(
            (ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")),
            ("example.com", "~corp.example", "~."),
            ("ndots:2", "rotate", "trust-ad"),
            -2147483647,
        ),
        ipv6=DnsFamilyConfig(
            (ipaddress.IPv6Address("fe80::1"), ipaddress.IPv6Address("2001:db8::1")),
            (),
            ("inet6",),
            2147483647,
        ),
        created_seq=3,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ipv4.dns": ["192.0.2.300"]}, "ipv4.dns: '192.0.2.300' is not an IP address"),
        ({"ipv4.dns": ["2001:db8::1"]}, "ipv4.dns: '2001:db8::1' is not an IPv4 address"),
        ({"ipv6.dns": ["192.0.2.1"]}, "ipv6.dns: '192.0.2.1' is not an IPv6 address"),
        ({"ipv4.dns": ["0.0.0.0"]}, "ipv4.dns: '0.0.0.0' is the unspecified address"),  # noqa: S104
        (
            {"ipv6.dns": ["fe80::1%eth1"]},
            "ipv6.dns: 'fe80::1%eth1': the scope must be the connection's interface 'eth0'",
        ),
        (
            {"ipv6.dns": ["2001:db8::1%eth0"]},
            "ipv6.dns: '2001:db8::1%eth0': only link-local servers take a %scope",
        ),
        (
            {"ipv4.dns-priority": 2147483648},
            "ipv4.dns-priority: 2147483648 is outside -2147483647..2147483647",
        ),
        (
            {"ipv6.dns-priority": -2147483648},
            "ipv6.dns-priority: -2147483648 is not allowed, the range is -2147483647..2147483647",
        ),
        ({"ipv4.dns-priority": "10"}, "ipv4.dns-priority: must be an integer (i)"),
        ({"ipv4.dns-priority": True}, "ipv4.dns-priority: must be an integer (i)"),
        ({"ipv4.dns": "192.0.2.1"}, "ipv4.dns: must be a list of strings (as)"),
        ({"ipv4.dns": [1]}, "ipv4.dns: must be a list of strings (as)"),
        ({"connection.type": 3}, "connection.type: must be a string (s)"),
        (
            {"connection.type": "ethernet2"},
            f"connection.type: unknown connection type 'ethernet2' (known: {KNOWN_TYPES}); "
            "did you mean 'ethernet'?",
        ),
        (
            {"ipv4.dns-search": ["exa mple.com"]},
            "ipv4.dns-search: 'exa mple.com' is not a domain name (RFC 1123 labels of 1-63 "
            "letters, digits and inner hyphens, at most 253 characters, optional leading '~')",
        ),
        ({"ipv4.dns-options": ["bogus"]}, "ipv4.dns-options: unknown DNS option 'bogus'"),
        ({"ipv4.dns-options": ["ndots"]}, "ipv4.dns-options: 'ndots' needs a value, like ndots:2"),
        (
            {"ipv4.dns-options": ["timeout:-1"]},
            "ipv4.dns-options: 'timeout:-1' needs a value, like timeout:2",
        ),
        ({"ipv4.dns-options": ["rotate:1"]}, "ipv4.dns-options: 'rotate' takes no value"),
        (
            {"ipv4.dns-options": ["inet6"]},
            "ipv4.dns-options: 'inet6' is only valid in ipv6.dns-options",
        ),
        (
            {"ipv4.dns-options": ["ndots:1", "ndots:2"]},
            "ipv4.dns-options: option 'ndots' is given more than once",
        ),
        (
            {"ipv4.dns-options": ["_no-add-edns0"]},
            "ipv4.dns-options: unknown DNS option '_no-add-edns0'",
        ),
        ({"ipv4.gateway": "192.0.2.254"}, "ipv4.gateway: unknown setting"),
        (
            {"connection.interface-name": "averyverylongname"},
            "connection.interface-name: 'averyverylongname' must be 1-15 bytes long",
        ),
        (
            {"connection.interface-name": "eth/0"},
            "connection.interface-name: 'eth/0' is not a valid interface name",
        ),
        (
            {"connection.interface-name": ".."},
            "connection.interface-name: '..' is not a valid interface name",
        ),
        (
            {"connection.interface-name": "eth 0"},
            "connection.interface-name: 'eth 0' is not a valid interface name",
        ),
    ],
)
def test_bad_input_is_refused_with_the_key_and_rule(
    settings: dict[str, object], message: str
) -> None:
    refuse(settings, message)


@pytest.mark.parametrize(
    "domain",
    ["-bad.example", "bad-.example", "a..b", "", "~", "x" * 64 + ".example", "a_b.example"],
)
def test_bad_domains(domain: str) -> None:
    with pytest.raises(InvalidArgument, match="is not a domain name"):
        make(ipv4_dns_search=[domain])


def test_long_domain_over_253_characters() -> None:
    domain = ".".join(["a" * 63] * 4)  # 255 characters
    with pytest.raises(InvalidArgument, match="is not a domain name"):
        make(ipv4_dns_search=[domain])


@pytest.mark.parametrize("name", ["", "x" * 65, 'a"b', "a\\b", " lead", "tab\there"])
def test_bad_connection_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="connection name"):
        merge_settings(None, name, BASE, created_seq=0)


def test_new_connection_needs_interface_and_type() -> None:
    with pytest.raises(InvalidArgument) as info:
        merge_settings(None, "x", {"connection.type": "wifi"}, created_seq=0)
    assert info.value.message == "connection.interface-name: required for a new connection"
    with pytest.raises(InvalidArgument) as info:
        merge_settings(None, "x", {"connection.interface-name": "wlan0"}, created_seq=0)
    assert info.value.message == "connection.type: required for a new connection"


def test_partial_update_keeps_other_keys_and_creation_order() -> None:
    conn = make(ipv4_dns=["192.0.2.1"], ipv4_dns_priority=5)
    updated = merge_settings(conn, "office", {"ipv6.dns": ["2001:db8::1"]}, created_seq=99)
    assert updated.ipv4 == conn.ipv4
    assert updated.ipv6.servers == (ipaddress.IPv6Address("2001:db8::1"),)
    assert updated.created_seq == 3
    # Idempotent: setting what is set changes nothing.
    assert merge_settings(updated, "office", to_settings(updated), created_seq=7) == updated


def test_to_settings_round_trip() -> None:
    conn = make(ipv4_dns=["192.0.2.1"], ipv6_dns=["fe80::1"], ipv6_dns_options=["no-aaaa"])
    settings = to_settings(conn)
    assert settings == {
        "connection.interface-name": "eth0",
        "connection.type": "ethernet",
        "ipv4.dns": ["192.0.2.1"],
        "ipv4.dns-search": [],
        "ipv4.dns-options": [],
        "ipv4.dns-priority": 0,
        "ipv6.dns": ["fe80::1"],
        "ipv6.dns-search": [],
        "ipv6.dns-options": ["no-aaaa"],
        "ipv6.dns-priority": 0,
    }
    assert merge_settings(None, "office", settings, created_seq=3) == conn


def test_global_priority() -> None:
    assert make_global_priority(-5, 0) == GlobalDnsPriority(-5, 0)
    with pytest.raises(InvalidArgument, match=r"ipv6\.dns-priority: -2147483648 is not allowed"):
        make_global_priority(0, -2147483648)


# -- the connections file -------------------------------------------------------------------

FILE = """\
# Managed by netpathd: DNS connections set over D-Bus (org.netpathd1.Dns).
# Sections are in creation order, which breaks full priority ties.
[dns]
ipv4.dns-priority = 40
ipv6.dns-priority = 0

[connection "office"]
connection.interface-name = eth0
connection.type = ethernet
ipv4.dns = 192.0.2.1, 192.0.2.2
ipv4.dns-search = example.com, ~corp.example
ipv4.dns-options = rotate
ipv4.dns-priority = -1
ipv6.dns = fe80::1
ipv6.dns-search =
ipv6.dns-options =
ipv6.dns-priority = 0

[connection "vpn"]
connection.interface-name = tun0
connection.type = vpn
ipv4.dns = 198.51.100.1
ipv4.dns-search =
ipv4.dns-options =
ipv4.dns-priority = 0
ipv6.dns =
ipv6.dns-search =
ipv6.dns-options =
ipv6.dns-priority = 0
"""


def test_parse_and_render_connections_file() -> None:
    config = parse_connections_file(FILE, "/var/lib/netpathd/dns.conf")
    assert config.global_priority == GlobalDnsPriority(40, 0)
    assert [c.name for c in config.connections] == ["office", "vpn"]
    assert [c.created_seq for c in config.connections] == [0, 1]
    office = config.connections[0]
    assert office.ipv4.search == ("example.com", "~corp.example")
    assert office.ipv4.priority == -1
    assert office.ipv6.servers == (ipaddress.IPv6Address("fe80::1"),)
    assert render_connections_file(config) == FILE


def test_minimal_file_and_order_of_sections_is_creation_order() -> None:
    text = (
        '[connection "b"]\nconnection.type = wifi\nconnection.interface-name = wlan0\n'
        '[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
    )
    config = parse_connections_file(text, "f")
    assert config.global_priority == GlobalDnsPriority()
    assert [(c.name, c.created_seq) for c in config.connections] == [("b", 0), ("a", 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dns]\nipv4.dns-priority = x\n", "f:2: ipv4.dns-priority: must be an integer, got 'x'"),
        (
            "[dns]\nipv4.dns-priority = -2147483648\n",
            "f:2: ipv4.dns-priority: -2147483648 is not allowed, the range is "
            "-2147483647..2147483647",
        ),
        ("[dns]\nipv4.dns = 192.0.2.1\n", "f:2: ipv4.dns: unknown key in [dns]"),
        ("[dns]\n[dns]\n", "f:2: [dns] is given twice"),
        ("[main]\n", "f:1: unknown section [main]"),
        ("[connection]\n", "f:1: unknown section [connection]"),
        (
            '[connection "a"]\nconnection.type = ethernet\n',
            "f:1: connection.interface-name: required in [connection 'a']",
        ),
        (
            '\n[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
            "ipv4.dns = 192.0.2.1, 2001:db8::1\n",
            "f:5: ipv4.dns: '2001:db8::1' is not an IPv4 address",
        ),
        (
            '[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
            "ipv4.dns = 192.0.2.1,\n",
            "f:4: ipv4.dns: '' is not an IP address",
        ),
        (
            '[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ether\n',
            f"f:3: connection.type: unknown connection type 'ether' (known: {KNOWN_TYPES}); "
            "did you mean 'ethernet'?",
        ),
        (
            '[connection "a"]\nconnection.interface-name = eth0/1\nconnection.type = ethernet\n',
            "f:2: connection.interface-name: 'eth0/1' is not a valid interface name",
        ),
        (
            '[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
            "ipv4.mtu = 1500\n",
            "f:4: ipv4.mtu: unknown setting",
        ),
        (
            '[connection "a"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
            '[connection "a"]\n',
            "f:4: connection 'a' is given twice",
        ),
        (
            '[connection " a"]\n',
            "f:1: connection name ' a': must be printable, without quotes, "
            "backslashes or surrounding whitespace",
        ),
        ("ipv4.dns-priority = 1\n", "f:1: 'ipv4.dns-priority' is outside of any section"),
    ],
)
def test_connections_file_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_connections_file(text, "f")
    assert info.value.message == message


SERVERS4 = st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7"])
SERVERS6 = st.sampled_from(["2001:db8::1", "fe80::1", "2001:db8::53"])
DOMAINS = st.sampled_from(["example.com", "~corp.example", "~.", "a-b.example.net"])
OPTIONS = st.sampled_from(["rotate", "ndots:3", "trust-ad", "edns0", "timeout:1"])
PRIORITIES = st.integers(-2147483647, 2147483647)


@st.composite
def connections(draw: st.DrawFn) -> DnsConfig:
    names = draw(st.lists(st.text("abc xyz-_.", min_size=1, max_size=8), unique=True, max_size=4))
    conns: list[DnsConnection] = []
    for raw in names:
        name = raw.strip() or "n"
        if any(c.name == name for c in conns):
            continue
        settings: dict[str, object] = {
            "connection.interface-name": draw(st.sampled_from(["eth0", "wg0", "tun0"])),
            "connection.type": draw(st.sampled_from(["ethernet", "vpn", "wireguard", "wifi"])),
            "ipv4.dns": draw(st.lists(SERVERS4, unique=True, max_size=3)),
            "ipv4.dns-search": draw(st.lists(DOMAINS, unique=True, max_size=3)),
            "ipv4.dns-options": draw(st.lists(OPTIONS, unique=True, max_size=3)),
            "ipv4.dns-priority": draw(PRIORITIES),
            "ipv6.dns": draw(st.lists(SERVERS6, unique=True, max_size=3)),
            "ipv6.dns-priority": draw(PRIORITIES),
        }
        conns.append(merge_settings(None, name, settings, created_seq=len(conns)))
    return DnsConfig(GlobalDnsPriority(draw(PRIORITIES), draw(PRIORITIES)), tuple(conns))


@given(connections())
def test_keyfile_round_trip(config: DnsConfig) -> None:
    text = render_connections_file(config)
    assert parse_connections_file(text, "f") == config


@pytest.mark.parametrize(
    "domain",
    [
        "corp example",
        "~",
        "~~corp.example",
        "corp.example\n",
        "corp.example\nnameserver 192.0.2.66",
        "a\rb",
        "corp.example/10.0.0.1",
        "#corp",
        ("a" * 62 + ".") * 4 + "ab",  # 254 characters
        "~" + ("a" * 62 + ".") * 4 + "ab",
        ".",
        "",
    ],
)
def test_a_domain_that_could_inject_a_line_or_a_route_is_refused(domain: str) -> None:
    """Split DNS pushes domains to dnsmasq (/domain/server) and resolved: only host names pass."""
    with pytest.raises(InvalidArgument, match="is not a domain name"):
        merge_settings(None, "c", {**BASE, "ipv4.dns-search": [domain]}, created_seq=0)


def test_a_domain_of_253_characters_is_accepted() -> None:
    domain = ("a" * 62 + ".") * 4 + "a"
    assert len(domain) == 253
    conn = merge_settings(None, "c", {**BASE, "ipv4.dns-search": [f"~{domain}"]}, created_seq=0)
    assert conn.ipv4.search == (f"~{domain}",)


VALUES = {
    "connection.type": st.sampled_from(["ethernet", "vpn", "bogus"]),
    "ipv4.dns": st.sampled_from(["", "192.0.2.1", "192.0.2.1, 198.51.100.7", "300.1.1.1"]),
    "ipv6.dns": st.sampled_from(["", "2001:db8::1", "fe80::1", "2001:db8::1, nonsense"]),
    "ipv4.dns-search": st.sampled_from(["", "example.com, ~corp.example", "bad domain"]),
    "ipv6.dns-search": st.sampled_from(["", "~.", "a..b"]),
    "ipv4.dns-options": st.sampled_from(["", "rotate, ndots:3", "ndots", "rotate, rotate"]),
    "ipv6.dns-options": st.sampled_from(["", "inet6", "timeout:x"]),
    "ipv4.dns-priority": st.sampled_from(["50", "-10", "x", "-2147483648"]),
    "ipv6.dns-priority": st.sampled_from(["100", "2147483648"]),
}
MANY_SERVERS = [", ".join(f"192.0.2.{i}" for i in range(1, n + 1)) for n in (1, 128, 200)]


@st.composite
def connection_sections(draw: st.DrawFn) -> str:
    keys = draw(st.permutations(list(VALUES)))[: draw(st.integers(1, len(VALUES)))]
    if "connection.type" not in keys:
        keys.append("connection.type")
    lines = ['[connection "c"]', "connection.interface-name = eth0"]
    for key in keys:
        if key in ("ipv4.dns", "ipv6.dns") and draw(st.booleans()):
            many = draw(st.sampled_from(MANY_SERVERS))  # the caps count both families
            value = many if key == "ipv4.dns" else many.replace("192.0.2.", "2001:db8::")
        else:
            value = draw(VALUES[key])
        lines.append(f"{key} = {value}".rstrip())
    return "\n".join(lines) + "\n"


@given(connection_sections())
def test_a_section_is_read_as_its_entries_applied_one_at_a_time(text: str) -> None:
    """The merge of every key at once (issue 13) accepts and refuses exactly what applying
    the entries one by one in file order does, and names the same line."""
    (section,) = parse_keyfile(text, "f")

    def outcome(read: Callable[[], DnsConnection]) -> DnsConnection | str:
        try:
            return read()
        except ConfigError as error:
            return str(error)

    assert outcome(lambda: parse_connection_section(section, "f", 4)) == outcome(
        lambda: _merged_entry_by_entry(section, "f", "c", 4)
    )
