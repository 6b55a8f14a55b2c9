"""Admin files that could never work are refused whole, with file:line (issue 8, items 6-9)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from netpathd.errors import ConfigError, InvalidArgument
from netpathd.files.config import MAX_CONFIG_BYTES, read_config_text
from netpathd.model.dns_settings import (
    MAX_SEARCH_DOMAINS,
    MAX_SERVERS,
    merge_settings,
    parse_connections_file,
)
from netpathd.model.keyfile import parse_keyfile
from netpathd.model.mptcp import Endpoint, parse_address, validate_endpoint
from netpathd.model.mptcp_config import parse_config
from netpathd.model.settings import parse_settings
from tests.support.fifo import fifo_at

BASE: dict[str, object] = {"connection.interface-name": "eth0", "connection.type": "ethernet"}


def refused_config(text: str, path: str = "/etc/netpathd/mptcp.conf") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    return caught.value


# -- item 6: scoped IPv6 addresses ------------------------------------------------------------


def test_a_scoped_ipv6_endpoint_address_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_address("fe80::1%e1")
    assert caught.value.message == (
        "invalid IP address 'fe80::1%e1': an endpoint takes no %scope "
        "(bind it to the interface instead)"
    )


def test_a_scoped_ipv6_endpoint_in_the_file_names_the_line() -> None:
    error = refused_config('# x\n[endpoint "fe80::1%e1"]\nflags = subflow\n')
    assert error.line == 2
    assert "an endpoint takes no %scope" in error.message


# -- item 7: NUL bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '[endpoint "192.0.2.1"]\ninterface = e1\0x\n',
        '[endpoint "192.0.2.1"]\n\0\n',
        '[endpoint "192.0.2.1"]\n# e1\0x\n',
    ],
)
def test_a_nul_byte_anywhere_is_refused_with_its_line(text: str) -> None:
    error = refused_config(text)
    assert error.line == 2
    assert error.reason == "contains a NUL byte"


def test_keyfile_refuses_nul_bytes_for_every_file() -> None:
    with pytest.raises(ConfigError, match=r"^f:1: contains a NUL byte$"):
        parse_keyfile("[main\0]\n", "f")


# -- item 8: interface names, duplicate [main] ------------------------------------------------


@pytest.mark.parametrize(
    ("interface", "reason"),
    [
        ("e" * 300, "interface '" + "e" * 300 + "' must be 1-15 bytes long"),
        ("e" * 16, "interface '" + "e" * 16 + "' must be 1-15 bytes long"),
        ("eth/0", "interface 'eth/0' is not a valid interface name"),
        ("eth:0", "interface 'eth:0' is not a valid interface name"),
        ("..", "interface '..' is not a valid interface name"),
    ],
)
def test_an_endpoint_interface_follows_the_kernel_rules(interface: str, reason: str) -> None:
    error = refused_config(f'[endpoint "192.0.2.1"]\nflags = subflow\ninterface = {interface}\n')
    assert (error.line, error.reason) == (3, reason)


def test_a_fifteen_byte_interface_name_is_fine() -> None:
    config = parse_config('[endpoint "192.0.2.1"]\ninterface = ' + "e" * 15 + "\n", "f")
    assert config.endpoints[0].interface == "e" * 15


def test_an_endpoint_interface_over_the_bus_follows_the_kernel_rules() -> None:
    address = parse_address("192.0.2.1")
    with pytest.raises(InvalidArgument, match="must be 1-15 bytes long"):
        validate_endpoint(Endpoint(id=0, address=address, interface="e" * 300))
    with pytest.raises(InvalidArgument, match="contains a NUL byte"):
        validate_endpoint(Endpoint(id=0, address=address, interface="e1\0x"))


def test_a_duplicate_main_section_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings("[main]\nlog-level = debug\n\n[main]\nrc-manager = file\n", "f")
    assert caught.value.message == "f:4: [main] is already on line 1"


# -- item 8: only regular files, bounded ------------------------------------------------------


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "mptcp.conf"
    with fifo_at(fifo), pytest.raises(ConfigError) as caught:
        started = time.monotonic()
        read_config_text(fifo)
    assert time.monotonic() - started < 2
    assert caught.value.message == f"{fifo}:0: not a regular file (a FIFO)"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config_text(tmp_path)


def test_a_file_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "dns.conf"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        read_config_text(big)
    assert caught.value.message == f"{big}:0: larger than {MAX_CONFIG_BYTES} bytes"


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.conf").write_text("[main]\n")
    (tmp_path / "netpathd.conf").symlink_to("real.conf")
    assert read_config_text(tmp_path / "netpathd.conf") == "[main]\n"
    assert read_config_text(tmp_path / "missing.conf") is None


# -- item 9: addresses that can never work ----------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("0.0.0.0", "is the unspecified address"),  # noqa: S104
        ("::", "is the unspecified address"),
        ("255.255.255.255", "is the broadcast address"),
        ("224.0.0.1", "is a multicast address"),
        ("ff02::1", "is a multicast address"),
        ("::ffff:192.0.2.1", "is an IPv4-mapped IPv6 address (use 192.0.2.1)"),
    ],
)
def test_endpoints_that_can_never_work_are_refused(address: str, problem: str) -> None:
    shown = parse_address(address)  # Python < 3.13 prints ::ffff:c000:201
    with pytest.raises(InvalidArgument) as caught:
        validate_endpoint(Endpoint(id=0, address=shown))
    assert caught.value.message == f"endpoint {shown} {problem}"
    error = refused_config(f'[endpoint "{address}"]\nflags = subflow\n')
    assert (error.line, error.reason) == (1, f"endpoint {shown} {problem}")


@pytest.mark.parametrize(
    ("key", "server", "problem"),
    [
        ("ipv6.dns", "::", "is the unspecified address"),
        ("ipv4.dns", "255.255.255.255", "is the broadcast address"),
        ("ipv4.dns", "239.1.2.3", "is a multicast address"),
        ("ipv6.dns", "ff02::fb", "is a multicast address"),
        ("ipv6.dns", "::ffff:192.0.2.53", "is an IPv4-mapped IPv6 address (use 192.0.2.53)"),
    ],
)
def test_dns_servers_that_can_never_work_are_refused(key: str, server: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        merge_settings(None, "wan", {**BASE, key: [server]}, created_seq=0)
    assert caught.value.message == f"{key}: {server!r} {problem}"


def test_servers_per_connection_are_capped_across_both_families() -> None:
    ipv4 = [f"192.0.2.{n}" for n in range(1, 201)]
    ipv6 = [f"2001:db8::{n:x}" for n in range(1, MAX_SERVERS - 200 + 1)]
    conn = merge_settings(None, "wan", {**BASE, "ipv4.dns": ipv4, "ipv6.dns": ipv6}, created_seq=0)
    assert len(conn.ipv4.servers) + len(conn.ipv6.servers) == MAX_SERVERS
    with pytest.raises(InvalidArgument) as caught:
        merge_settings(conn, "wan", {"ipv6.dns": [*ipv6, "2001:db8::ffff"]}, created_seq=0)
    assert caught.value.message == (
        f"ipv6.dns: at most {MAX_SERVERS} DNS servers per connection "
        f"(ipv4.dns and ipv6.dns together), got {MAX_SERVERS + 1}"
    )


def test_search_domains_per_connection_are_capped_across_both_families() -> None:
    domains = [f"d{n}.example" for n in range(MAX_SEARCH_DOMAINS)]
    conn = merge_settings(None, "wan", {**BASE, "ipv4.dns-search": domains}, created_seq=0)
    with pytest.raises(InvalidArgument) as caught:
        merge_settings(conn, "wan", {"ipv6.dns-search": ["one.more.example"]}, created_seq=0)
    assert caught.value.message == (
        f"ipv6.dns-search: at most {MAX_SEARCH_DOMAINS} search domains per connection "
        f"(ipv4.dns-search and ipv6.dns-search together), got {MAX_SEARCH_DOMAINS + 1}"
    )


def test_the_caps_hold_in_the_connections_file_with_its_line() -> None:
    servers = ", ".join(f"192.0.2.{n % 250 + 1}" for n in range(MAX_SERVERS + 1))
    text = (
        '[connection "wan"]\nconnection.interface-name = eth0\nconnection.type = ethernet\n'
        f"ipv4.dns = {servers}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_connections_file(text, "f")
    assert caught.value.line == 4
    assert f"at most {MAX_SERVERS} DNS servers per connection" in caught.value.reason
