"""Carrier loss: a linkdown default route stops being the best one, and DNS follows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from netpathd.dns_manager import DnsManager
from netpathd.files.resolv_conf import RcManager
from netpathd.kernel.rtnl import RtnlWatcher
from netpathd.model.links import Family, NetState
from tests.integration.test_dns_daemon import nameservers, topology
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

WAN_FIRST = ("203.0.113.53", "198.51.100.53")
LAN_FIRST = WAN_FIRST[::-1]


async def test_the_resolver_order_follows_carrier_loss_and_return(
    ns: Netns, tmp_path: Path
) -> None:
    topology(ns)  # wan0 holds the better default route (metric 100 against 200)
    dns = DnsManager(
        tmp_path / "config", tmp_path / "state", tmp_path / "resolv.conf", RcManager.FILE
    )
    for name, link, server in (("wan", "wan0", WAN_FIRST[0]), ("lan", "lan0", LAN_FIRST[0])):
        settings = {"connection.interface-name": link, "connection.type": "ethernet"}
        dns.set_connection(name, {**settings, "ipv4.dns": [server]}, runtime=True)
    wanted: tuple[str, ...] = ()
    reached: asyncio.Event = asyncio.Event()

    def on_change(state: NetState) -> None:
        dns.update_network(state)
        if dns.result.nameservers == wanted:
            reached.set()

    async def until(order: tuple[str, ...]) -> None:
        nonlocal wanted
        wanted = order
        reached.clear()
        if dns.result.nameservers != order:
            await asyncio.wait_for(reached.wait(), 20)  # linkwatch delays carrier by up to 1 s
        assert nameservers(dns.resolv_conf) == list(order)

    watcher = RtnlWatcher(on_change, netns=ns.name)
    await watcher.start()
    dns.update_network(watcher.state)
    try:
        await until(WAN_FIRST)
        ns.ip("link", "set", "wan0p", "down")  # the peer goes: wan0 loses carrier
        await until(LAN_FIRST)
        wan0 = watcher.state.link_by_name("wan0")
        assert wan0 is not None and wan0.up and not wan0.carrier

        # What the kernel itself says in a fresh dump: the route is flagged linkdown.
        fresh = RtnlWatcher(lambda state: None, netns=ns.name)
        await fresh.start()
        await fresh.close()
        best = fresh.state.best_default_route(Family.IPV4)
        assert best is not None
        assert fresh.state.links[best.ifindex].name == "lan0"
        assert [route.linkdown for route in fresh.state.route_table.on_link(wan0.ifindex)] == [True]

        ns.ip("link", "set", "wan0p", "up")
        await until(WAN_FIRST)
    finally:
        await watcher.close()
