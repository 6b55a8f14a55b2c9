"""After a netlink overrun (ENOBUFS) the resolver file still ends as the kernel says."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from netpathd.dns_manager import DnsManager
from netpathd.files.resolv_conf import RcManager
from netpathd.kernel.rtnl import RtnlWatcher
from netpathd.model.links import NetState
from tests.integration.test_dns_daemon import nameservers, topology
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


async def test_overrun_ends_in_the_kernels_order(ns: Netns, tmp_path: Path) -> None:
    topology(ns)
    dns = DnsManager(
        tmp_path / "config", tmp_path / "state", tmp_path / "resolv.conf", RcManager.FILE
    )
    for name, link, server in (("wan", "wan0", "192.0.2.53"), ("lan", "lan0", "198.51.100.53")):
        settings = {"connection.interface-name": link, "connection.type": "ethernet"}
        dns.set_connection(name, {**settings, "ipv4.dns": [server]}, runtime=True)
    lan_first = ("198.51.100.53", "192.0.2.53")
    settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_change(state: NetState) -> None:
        dns.update_network(state)
        if dns.result.nameservers == lan_first and not settled.done():
            settled.set_result(None)

    watcher = RtnlWatcher(on_change, netns=ns.name, rcvbuf=4096)
    await watcher.start()
    dns.update_network(watcher.state)
    assert nameservers(dns.resolv_conf) == ["192.0.2.53", "198.51.100.53"]
    try:
        batch = tmp_path / "flood.batch"
        lines = [
            f"route replace default via 198.51.100.{1 + step % 2} dev lan0 metric 150"
            for step in range(3000)
        ]
        batch.write_text(
            "\n".join([*lines, "route replace default via 198.51.100.1 dev lan0 metric 50", ""])
        )
        # Blocking the loop while the kernel queues 3000 notifications overruns the 4 KiB buffer
        # (alternating gateways: replacing a route with an identical one notifies nobody).
        flood = ["ip", "-n", ns.name, "-batch", str(batch)]
        subprocess.run(flood, check=True, timeout=60)  # noqa: ASYNC221 - blocking on purpose
        await asyncio.wait_for(settled, 20)
        await watcher.wait_resynced()
    finally:
        await watcher.close()
    assert watcher.resyncs >= 1
    assert nameservers(dns.resolv_conf) == list(lan_first)
