"""RA-learned connections follow their link: late names, renames, removal, the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpathd.dns_manager import DnsManager
from netpathd.dns_ra import RaDns
from netpathd.errors import InvalidArgument
from netpathd.files.resolv_conf import RcManager
from netpathd.model.links import Link, NetState
from netpathd.model.ra_policy import RaPolicy
from tests.support.ra import rdnss

SERVER = "2001:db8::53"


@pytest.fixture
def dns(tmp_path: Path) -> DnsManager:
    manager = DnsManager(tmp_path, tmp_path, tmp_path / "resolv.conf", RcManager.UNMANAGED)
    manager.update_network(NetState())
    return manager


def links(**names: int) -> NetState:
    return NetState(links={index: Link(index, name, True) for name, index in names.items()})


def servers(dns: DnsManager, name: str) -> list[str] | None:
    conn = dns.sourced(name)
    return None if conn is None else [str(server) for server in conn.ipv6.servers]


async def test_an_ra_before_the_link_is_known_is_published_once_it_is(dns: DnsManager) -> None:
    ra = RaDns(dns, RaPolicy())
    ra.on_options(5, rdnss([SERVER], 600))
    assert dns.sourced("ra:eth5") is None
    state = links(eth5=5)
    dns.update_network(state)
    ra.network_changed(state)
    assert servers(dns, "ra:eth5") == [SERVER]
    assert dns.result.nameservers == (SERVER,)
    ra.close()


async def test_a_renamed_link_keeps_its_servers_and_a_removed_one_loses_them(
    dns: DnsManager,
) -> None:
    ra = RaDns(dns, RaPolicy())
    ra.network_changed(links(lan0=2))
    ra.on_options(2, rdnss([SERVER], 600))
    assert servers(dns, "ra:lan0") == [SERVER]
    ra.network_changed(links(lan9=2))
    assert dns.sourced("ra:lan0") is None
    assert servers(dns, "ra:lan9") == [SERVER]
    ra.network_changed(NetState())
    assert dns.sourced("ra:lan9") is None
    ra.network_changed(links(lan9=2))  # a new link with the same index learned nothing
    assert dns.sourced("ra:lan9") is None


async def test_before_any_ra_links_and_the_policy_change_nothing(dns: DnsManager) -> None:
    """The table is built with the first RA: until then there is nothing to publish."""
    ra = RaDns(dns, RaPolicy())
    ra.network_changed(links(lan0=2))
    ra.set_policy(RaPolicy(use_dns=False))
    ra.network_changed(NetState())
    ra.set_policy(RaPolicy())
    ra.network_changed(links(lan0=2))
    assert dns.sourced("ra:lan0") is None
    ra.on_options(2, rdnss([SERVER], 600))
    assert servers(dns, "ra:lan0") == [SERVER]
    ra.close()


async def test_the_policy_hides_and_shows_what_was_learned(dns: DnsManager) -> None:
    ra = RaDns(dns, RaPolicy(use_dns=True, links={"wlan0": False}))
    ra.network_changed(links(wlan0=3))
    ra.on_options(3, rdnss([SERVER], 600))
    assert dns.sourced("ra:wlan0") is None
    ra.set_policy(RaPolicy())
    assert servers(dns, "ra:wlan0") == [SERVER]
    ra.set_policy(RaPolicy(use_dns=False))
    assert dns.sourced("ra:wlan0") is None
    ra.close()


async def test_a_malformed_message_is_skipped(dns: DnsManager) -> None:
    ra = RaDns(dns, RaPolicy())
    ra.network_changed(links(lan0=2))
    ra.on_options(2, bytes([25, 0]))
    ra.on_options(2, bytes([25, 2]) + bytes(14) + rdnss([SERVER], 600))
    assert servers(dns, "ra:lan0") == [SERVER]
    ra.close()


@pytest.mark.parametrize("name", ["ra:lan0", "resolvconf:tun.wg0"])
def test_the_sources_names_cannot_be_taken_by_a_bus_caller(dns: DnsManager, name: str) -> None:
    settings = {"connection.interface-name": "lan0", "connection.type": "ethernet"}
    with pytest.raises(InvalidArgument, match="reserved"):
        dns.set_connection(name, settings, runtime=True)
    assert dns.connections() == []
