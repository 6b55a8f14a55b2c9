"""Automatic MPTCP endpoints (``[auto]`` in mptcp.conf) with a real daemon and kernel.

Each test runs netpathd in a throw-away namespace whose "eth1" is a veth end
(its peer in another namespace keeps the carrier up).  ``ip mptcp`` in the
namespace is the independent witness.  Nothing is slept for: every step awaits
the ``Endpoints`` (or limits) PropertiesChanged that the daemon emits after the
round that handled the change.  To show that something did *not* happen, a
test makes an eligible change after it and awaits that one: rounds act on the
latest network state, so a round that saw the later change saw the earlier too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netpathd.files.record_log import last_record
from tests.support.bus import PrivateBus
from tests.support.daemon import running_daemon
from tests.support.dbus_client import BusClient, bus_client
from tests.support.netns import Netns, netns, veth

pytestmark = pytest.mark.integration

MPTCP = "org.netpathd1.Mptcp"
TIMEOUT = 15.0


@pytest.fixture
def eth(ns: Netns) -> Iterator[Netns]:
    """``ns`` with "eth1" (192.0.2.1/24, IPv4 default route via 192.0.2.254)."""
    with netns() as peer:
        veth(ns, "eth1", peer, "eth1")
        ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
        ns.ip("route", "add", "default", "via", "192.0.2.254", "dev", "eth1")
        yield ns


def write_config(workdir: Path, text: str) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "mptcp.conf").write_text(text)


def kernel_table(ns: Netns) -> list[str]:
    """``ip mptcp endpoint show`` lines without ids (the kernel picks them)."""
    lines = ns.ip("mptcp", "endpoint", "show").stdout.splitlines()
    return sorted(
        " ".join(w for i, w in enumerate(line.split()) if i not in (1, 2)) for line in lines
    )


def addresses(endpoints: list[Any]) -> set[str]:
    return {str(endpoint[1]) for endpoint in endpoints}


async def until_endpoints(client: BusClient, done: Callable[[set[str]], bool]) -> set[str]:
    """Await an ``Endpoints`` PropertiesChanged whose addresses satisfy ``done``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            interface, values = await client.changes.get()
            if interface == MPTCP and "Endpoints" in values:
                seen = addresses(values["Endpoints"])
                if done(seen):
                    return seen


async def until_property(client: BusClient, name: str, wanted: object) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            interface, values = await client.changes.get()
            if interface == MPTCP and values.get(name) == wanted:
                return


def rp_filter(ns: Netns, link: str) -> str:
    return ns.exec("sysctl", "-n", f"net.ipv4.conf.{link}.rp_filter").stdout.strip()


async def test_addresses_come_and_go_and_foreign_endpoints_stay(
    eth: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth
    write_config(tmp_path, "[auto]\n")
    ns.ip("mptcp", "endpoint", "add", "203.0.113.7", "dev", "eth1", "subflow")  # not ours
    with running_daemon(ns, bus, tmp_path):
        assert kernel_table(ns) == ["192.0.2.1 subflow dev eth1", "203.0.113.7 subflow dev eth1"]
        async with bus_client(bus.address) as client:
            ns.ip("address", "add", "203.0.113.7/24", "dev", "eth1")  # held by someone else
            ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
            await until_endpoints(client, lambda seen: "198.51.100.1" in seen)
            assert kernel_table(ns) == [
                "192.0.2.1 subflow dev eth1",
                "198.51.100.1 subflow dev eth1",
                "203.0.113.7 subflow dev eth1",
            ]
            ns.ip("address", "del", "203.0.113.7/24", "dev", "eth1")
            ns.ip("address", "del", "198.51.100.1/24", "dev", "eth1")
            await until_endpoints(client, lambda seen: "198.51.100.1" not in seen)
            assert kernel_table(ns) == [
                "192.0.2.1 subflow dev eth1",
                "203.0.113.7 subflow dev eth1",
            ]


async def test_link_local_tentative_and_ula_addresses_never_get_one(
    eth: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth
    write_config(tmp_path, "[auto]\n")
    ns.ip("address", "add", "2001:db8:1::1/64", "dev", "eth1", "nodad")
    ns.ip("-6", "route", "add", "default", "via", "2001:db8:1::fe", "dev", "eth1")
    # DAD of every later address on eth1 takes a minute: they stay tentative
    ns.sysctl("net.ipv6.neigh.eth1.retrans_time_ms", "60000")
    with running_daemon(ns, bus, tmp_path):
        async with bus_client(bus.address) as client:
            ns.ip("address", "add", "2001:db8:2::1/64", "dev", "eth1")  # tentative
            ns.ip("address", "add", "fd00::1/64", "dev", "eth1", "nodad")  # ULA
            ns.ip("address", "add", "169.254.7.1/16", "dev", "eth1")  # IPv4 link-local
            ns.ip("address", "add", "198.51.100.9/24", "dev", "eth1", "scope", "link")
            ns.ip("address", "add", "2001:db8:3::1/64", "dev", "eth1", "nodad")  # the witness
            await until_endpoints(client, lambda seen: "2001:db8:3::1" in seen)
            assert "tentative" in ns.ip("address", "show", "dev", "eth1").stdout
            assert kernel_table(ns) == [
                "192.0.2.1 subflow dev eth1",
                "2001:db8:1::1 subflow dev eth1",
                "2001:db8:3::1 subflow dev eth1",
            ]  # and never fe80::, eth1's own link-local address


async def test_without_a_default_route_only_also_without_default_route(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    write_config(tmp_path, '[auto]\n\n[auto "eth2"]\nalso-without-default-route = yes\n')
    with netns() as peer:
        veth(ns, "eth1", peer, "eth1")
        veth(ns, "eth2", peer, "eth2")
        with running_daemon(ns, bus, tmp_path):
            async with bus_client(bus.address) as client:
                ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
                ns.ip("address", "add", "203.0.113.1/24", "dev", "eth2")
                await until_endpoints(client, lambda seen: "203.0.113.1" in seen)
                assert kernel_table(ns) == ["203.0.113.1 subflow dev eth2"]
                ns.ip("route", "add", "default", "via", "198.51.100.254", "dev", "eth1")
                await until_endpoints(client, lambda seen: "198.51.100.1" in seen)
                assert kernel_table(ns) == [
                    "198.51.100.1 subflow dev eth1",
                    "203.0.113.1 subflow dev eth2",
                ]


async def test_prefix_rules_set_their_flags(eth: Netns, bus: PrivateBus, tmp_path: Path) -> None:
    ns = eth
    write_config(tmp_path, '[auto]\n\n[auto "198.51.100.0/24"]\nflags = subflow backup\n')
    with running_daemon(ns, bus, tmp_path):
        async with bus_client(bus.address) as client:
            ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
            await until_endpoints(client, lambda seen: "198.51.100.1" in seen)
            assert kernel_table(ns) == [
                "192.0.2.1 subflow dev eth1",
                "198.51.100.1 subflow backup dev eth1",
            ]


async def test_rp_filter_is_loosened_and_restored(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    write_config(tmp_path, "[auto]\n")
    record = tmp_path / "run" / "mptcp-applied.conf"
    with netns() as peer:
        veth(ns, "eth1", peer, "eth1")
        ns.sysctl("net.ipv4.conf.eth1.rp_filter", "1")
        with running_daemon(ns, bus, tmp_path):
            async with bus_client(bus.address) as client:
                ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
                ns.ip("route", "add", "default", "via", "192.0.2.254", "dev", "eth1")
                await until_endpoints(client, lambda seen: "192.0.2.1" in seen)
                assert rp_filter(ns, "eth1") == "2"
                assert "rp-filter-loosened = eth1" in last_record(record.read_text(), record)
                ns.ip("route", "del", "default")
                await until_endpoints(client, lambda seen: not seen)
                assert rp_filter(ns, "eth1") == "1"
                assert "rp-filter-loosened" not in last_record(record.read_text(), record)


async def test_limits_follow_the_automatic_endpoints(
    eth: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth
    write_config(tmp_path, "[auto]\nlimits = follow\n")
    with running_daemon(ns, bus, tmp_path):
        # one subflow endpoint: subflows stays 2, add_addr_accepted 0 -> 1
        assert ns.ip("mptcp", "limits").stdout.split() == [
            "add_addr_accepted",
            "1",
            "subflows",
            "2",
        ]
        async with bus_client(bus.address) as client:
            ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
            ns.ip("address", "add", "203.0.113.1/24", "dev", "eth1")
            await until_property(client, "Subflows", 3)
            assert ns.ip("mptcp", "limits").stdout.split() == [
                "add_addr_accepted", "3", "subflows", "3",
            ]  # fmt: skip


async def test_a_restart_neither_duplicates_nor_forgets(
    eth: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth
    write_config(tmp_path, "[auto]\n")
    ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
    ns.ip("mptcp", "endpoint", "add", "203.0.113.7", "subflow")  # not ours
    expected = [
        "192.0.2.1 subflow dev eth1",
        "198.51.100.1 subflow dev eth1",
        "203.0.113.7 subflow",
    ]
    with running_daemon(ns, bus, tmp_path):
        assert kernel_table(ns) == expected
    assert kernel_table(ns) == expected  # endpoints live in the namespace
    with running_daemon(ns, bus, tmp_path):
        assert kernel_table(ns) == expected
    ns.ip("address", "del", "198.51.100.1/24", "dev", "eth1")  # while nobody watches
    with running_daemon(ns, bus, tmp_path):
        # still known as netpathd's, so removed at start; the foreign one stays
        assert kernel_table(ns) == ["192.0.2.1 subflow dev eth1", "203.0.113.7 subflow"]
        async with bus_client(bus.address) as client:
            ns.ip("address", "del", "192.0.2.1/24", "dev", "eth1")
            await until_endpoints(client, lambda seen: "192.0.2.1" not in seen)
            assert kernel_table(ns) == ["203.0.113.7 subflow"]


async def test_without_auto_nothing_is_automatic_and_bound_endpoints_wait_for_their_link(
    eth: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth
    write_config(tmp_path, '[endpoint "203.0.113.9"]\nflags = subflow\ninterface = late0\n')
    with running_daemon(ns, bus, tmp_path) as daemon:
        assert kernel_table(ns) == []
        async with bus_client(bus.address) as client:
            ns.ip("address", "add", "198.51.100.1/24", "dev", "eth1")
            with netns() as peer:
                veth(ns, "late0", peer, "late0")
                await until_endpoints(client, lambda seen: "203.0.113.9" in seen)
                assert kernel_table(ns) == ["203.0.113.9 subflow dev late0"]
        stderr = daemon.stop()
    assert "MPTCP endpoint 203.0.113.9 waits for interface late0 to appear" in stderr
