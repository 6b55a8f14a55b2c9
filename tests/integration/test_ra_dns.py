"""RDNSS and DNSSL from real router advertisements into the resolver file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_dns_daemon import nameservers
from tests.support.bus import PrivateBus
from tests.support.ctl import netpathctl_ok
from tests.support.daemon import Daemon, running_daemon
from tests.support.dbus_client import TIMEOUT, BusClient, bus_client
from tests.support.netns import Netns, netns, veth
from tests.support.ra import ROUTER_ADDRESS, advertisement, dnssl, prepare, rdnss, send

pytestmark = pytest.mark.integration

DNS = "org.netpathd1.Dns"
SERVERS = ["2001:db8::53", "2001:db8::54"]


@pytest.fixture
def router() -> Iterator[Netns]:
    with netns("ra") as created:
        yield created


def connect(ns: Netns, router: Netns, *links: str) -> None:
    prepare(ns, router)
    for link in links:
        veth(ns, link, router, f"{link}r")
        router.ip("addr", "add", f"{ROUTER_ADDRESS}/64", "dev", f"{link}r", "nodad")


async def wait_values(client: BusClient, wanted: dict[str, object]) -> None:
    """Until the latest PropertiesChanged values of Dns say what ``wanted`` says."""
    latest: dict[str, object] = {}
    async with asyncio.timeout(TIMEOUT):
        while any(latest.get(name) != value for name, value in wanted.items()):
            interface, values = await client.changes.get()
            if interface == DNS:
                latest.update(values)


async def connections(client: BusClient) -> dict[str, dict[str, object]]:
    (found,) = await client.call(DNS, "GetConnections")
    return {name: {k: v.value for k, v in settings.items()} for name, settings in found}


async def test_servers_appear_and_expire_with_their_lifetime(
    daemon: Daemon, bus: PrivateBus, ns: Netns, router: Netns
) -> None:
    connect(ns, router, "lan0")
    async with bus_client(bus.address) as client:
        lifetime = 3
        sent = time.monotonic()
        send(
            router,
            "lan0r",
            advertisement(
                rdnss(SERVERS, lifetime), dnssl(["corp.example", "lab.example"], lifetime)
            ),
        )
        # the kernel hands over each option in a message of its own: two changes, which the
        # daemon may send as one PropertiesChanged
        await wait_values(
            client, {"Nameservers": SERVERS, "SearchDomains": ["corp.example", "lab.example"]}
        )
        assert nameservers(daemon.resolv_conf) == SERVERS
        assert "search corp.example lab.example" in daemon.resolv_conf.read_text()

        # each option expires on its own timer, from the moment its message arrived: the
        # record is gone once both have (seen once: servers gone, domains a moment later)
        await wait_values(client, {"Nameservers": [], "SearchDomains": []})
        assert time.monotonic() - sent >= lifetime  # not before the lifetime ran out
        assert nameservers(daemon.resolv_conf) == []
        assert "ra:lan0" not in await connections(client)


async def test_every_ra_refreshes_and_a_zero_lifetime_withdraws_at_once(
    daemon: Daemon, bus: PrivateBus, ns: Netns, router: Netns
) -> None:
    connect(ns, router, "lan0")
    async with bus_client(bus.address) as client:
        send(router, "lan0r", advertisement(rdnss(SERVERS[:1], 600)))
        await client.wait_change(DNS, "Nameservers", SERVERS[:1])
        # a second option in a later RA adds to the first; a malformed one is skipped
        bad_rdnss = bytes([25, 2, 0, 0, 0, 0, 0, 60]) + bytes(8)  # even length
        send(router, "lan0r", advertisement(bad_rdnss, rdnss(SERVERS[1:], 600)))
        await client.wait_change(DNS, "Nameservers", SERVERS)
        record = (await connections(client))["ra:lan0"]
        assert record["source"] == "ra"
        assert record["ipv6.dns"] == SERVERS
        shown = netpathctl_ok(bus.address, "dns", "show").splitlines()
        assert [line.split()[:4] for line in shown if line.startswith("ra:")] == [
            ["ra:lan0", "lan0", "generic", "ra"]
        ]
        (entries,) = await client.call(DNS, "Explain")
        assert [e["source"].value for e in entries if e["connection"].value == "ra:lan0"] == [
            "ra",
            "ra",
        ]
        assert any(e["connection"].value == "ra:lan0" and e["included"].value for e in entries)
        send(router, "lan0r", advertisement(rdnss(SERVERS, 0)))
        await client.wait_change(DNS, "Nameservers", [])  # long before 600 s
        assert "ra:lan0" not in await connections(client)


async def test_a_link_can_refuse_ra_servers(
    bus: PrivateBus, ns: Netns, router: Netns, tmp_path: Path
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "netpathd.conf").write_text(
        '[ra]\nuse-dns = yes\n[ra "lan0"]\nuse-dns = no\n'
    )
    with running_daemon(ns, bus, tmp_path) as daemon:
        connect(ns, router, "lan0", "lan1")
        async with bus_client(bus.address) as client:
            send(router, "lan0r", advertisement(rdnss(["2001:db8::1"], 600)))
            # RAs are read in order: once lan1's servers are in, lan0's were seen and refused
            send(router, "lan1r", advertisement(rdnss(["2001:db8::2"], 600)))
            await client.wait_change(DNS, "Nameservers", ["2001:db8::2"])
            assert nameservers(daemon.resolv_conf) == ["2001:db8::2"]
            assert "ra:lan0" not in await connections(client)

            # the policy follows a reload, without waiting for the next RA
            (tmp_path / "config" / "netpathd.conf").write_text("[ra]\nuse-dns = yes\n")
            await client.call("org.netpathd1.Manager", "Reload")
            await asyncio.wait_for(
                client.wait_change(DNS, "Nameservers", ["2001:db8::2", "2001:db8::1"]), 30
            )
