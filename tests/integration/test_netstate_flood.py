"""Floods of addresses and default routes: netpathd keeps answering and converges.

100,000 main-table default routes (distinct metrics, added in falling order so
that the kernel inserts each at the head of its alias list) and 20,000 IPv6
addresses spread over 200 links.  Not 100,000 addresses: the kernel itself
is quadratic there (measured on 6.18: 28,000 addresses on one link took 10
minutes, 30,000 over 300 links 8 s, 65,000 over 500 links 136 s), so more would
time the kernel, not netpathd.  The last line moves the best default route to
lan0, which swaps the resolver order: that is what converging means.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from tests.integration.test_dns_daemon import (
    DNS,
    connection,
    explain_entry,
    nameservers,
    servers,
    topology,
)
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

ROUTES = 100_000
LINK_PAIRS = 100
ADDRESSES_PER_LINK = 100  # x 200 links
RESPONSIVE = 0.1  # s: the bound for an answer during the flood
STALL = 1.0  # s that no answer may take: the old reducers stalled for 10 s and more
CONVERGED = 15.0  # s after the flood: generous on a loaded 2-core machine
WAN_FIRST = ["203.0.113.53", "198.51.100.53"]
LAN_FIRST = WAN_FIRST[::-1]


def flood_batches(directory: Path) -> list[Path]:
    links = [f"fl{pair}{end}" for pair in range(LINK_PAIRS) for end in "ab"]
    link_lines = [f"link add fl{pair}a type veth peer name fl{pair}b" for pair in range(LINK_PAIRS)]
    link_lines += [f"link set {name} up" for name in links]
    address_lines = [
        f"address add 2001:db8:{index:x}::{n:x}/128 dev {name} nodad noprefixroute"
        for n in range(1, ADDRESSES_PER_LINK + 1)
        for index, name in enumerate(links)
    ]
    route_lines = [
        f"route add default via 198.51.100.1 dev lan0 metric {1000 + ROUTES - n}"
        for n in range(ROUTES)
    ]
    route_lines.append("route replace default via 198.51.100.1 dev lan0 metric 50")
    batches = []
    for name, lines in (
        ("links", link_lines),
        ("addresses", address_lines),
        ("routes", route_lines),
    ):
        path = directory / f"{name}.batch"
        path.write_text("\n".join([*lines, ""]))
        batches.append(path)
    return batches


async def flood(ns: Netns, directory: Path) -> None:
    """Run the batches at nice 19: the kernel does the flood's work in ip's context, and on a
    shared 2-core machine it would otherwise take the CPU the measured daemon needs."""
    for batch in flood_batches(directory):
        argv = ["nice", "-n", "19", "ip", "-n", ns.name, "-batch", str(batch)]
        process = await asyncio.create_subprocess_exec(*argv)
        assert await asyncio.wait_for(process.wait(), 300) == 0


@asynccontextmanager
async def answer_times(ask: Callable[[], Awaitable[object]]) -> AsyncIterator[list[float]]:
    """Ask over and over while the body runs; yields the list of answer times."""
    times: list[float] = []

    async def keep_asking() -> None:
        while True:
            started = time.monotonic()
            await ask()
            times.append(time.monotonic() - started)
            await asyncio.sleep(0.005)

    task = asyncio.get_running_loop().create_task(keep_asking())
    try:
        yield times
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextmanager
def ahead_of_the_machine(*pids: int) -> Iterator[None]:
    """Nice -10 for the daemon, its bus and this client while the bound is measured.

    What is measured is netpathd's own stalls (the quadratic reducers stalled it for
    seconds); other sessions' tests on a shared 2-core machine (load 6 seen) delay
    the three processes of a Ping round trip by more than 100 ms on their own.
    """
    before = os.getpriority(os.PRIO_PROCESS, 0)
    for pid in (*pids, 0):
        os.setpriority(os.PRIO_PROCESS, pid, -10)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def assert_responsive(times: list[float]) -> None:
    """Every Ping within 100 ms, but for 1 in 100 and never a second.

    The margin is for the machine, not for netpathd: on a shared 2-core box with
    the CPUs 96% busy with other sessions' work (PSI cpu "some" above 50%), a
    round trip through three processes now and then waits 100-500 ms even at
    nice -10, while the daemon's own work is cut into 5 ms slices.  On a quiet
    machine the slowest Ping was 14-47 ms.
    """
    slow = [answer for answer in times if answer >= RESPONSIVE]
    assert len(times) > 10, "Ping was not asked throughout"
    assert max(times) < STALL, f"slowest Ping {max(times):.3f} s"
    assert len(slow) <= len(times) // 100, f"{len(slow)} of {len(times)} Pings over 100 ms"


def dns_pair() -> list[tuple[str, str, str]]:
    return [("wan", "wan0", WAN_FIRST[0]), ("lan", "lan0", LAN_FIRST[0])]


async def test_the_daemon_answers_ping_throughout_a_flood_and_converges(
    daemon: Daemon, bus: PrivateBus, ns: Netns, tmp_path: Path
) -> None:
    topology(ns)
    async with bus_client(bus.address) as client:
        for name, link, server in dns_pair():
            settings = connection(link, ipv4_dns=servers(server))
            await client.call(DNS, "SetConnection", "sa{sv}", [name, settings])
        await client.wait_change(DNS, "Nameservers", WAN_FIRST)

        async def ping() -> None:
            await client.call("org.freedesktop.DBus.Peer", "Ping")

        with ahead_of_the_machine(daemon.process.pid, bus.process.pid):
            async with answer_times(ping) as times:
                await flood(ns, tmp_path)
                flood_ended = time.monotonic()
                await client.wait_change(DNS, "Nameservers", LAN_FIRST)  # within its 15 s
                converged = time.monotonic() - flood_ended
        assert_responsive(times)
        assert await client.get(DNS, "Nameservers") == LAN_FIRST
        assert (await explain_entry(client, "lan"))["rank"] == "default-route"
    assert nameservers(daemon.resolv_conf) == LAN_FIRST
    print(
        f"converged {converged:.2f} s after the flood; {len(times)} pings, max {max(times):.3f} s"
    )


def netlink_route_drops(ns: Netns) -> int:
    """Messages the kernel dropped on NETLINK_ROUTE sockets of the namespace (/proc/net/netlink)."""
    rows = [line.split() for line in ns.exec("cat", "/proc/net/netlink").stdout.splitlines()[1:]]
    return sum(int(row[8]) for row in rows if row[1] == "0")  # Eth 0: NETLINK_ROUTE; Drops


async def test_after_a_forced_overrun_the_daemon_resyncs_answering_ping(
    daemon: Daemon, bus: PrivateBus, ns: Netns, tmp_path: Path
) -> None:
    """The flood while the daemon is stopped overruns its queue for sure (4 MiB hold a few
    thousand notifications); once continued it must resync, converge and keep answering."""
    topology(ns)
    async with bus_client(bus.address) as client:
        for name, link, server in dns_pair():
            settings = connection(link, ipv4_dns=servers(server))
            await client.call(DNS, "SetConnection", "sa{sv}", [name, settings])
        await client.wait_change(DNS, "Nameservers", WAN_FIRST)
        daemon.signal(signal.SIGSTOP)
        try:
            await flood(ns, tmp_path)
            assert netlink_route_drops(ns) > 0
        finally:
            daemon.signal(signal.SIGCONT)
        continued = time.monotonic()

        async def ping() -> None:
            await client.call("org.freedesktop.DBus.Peer", "Ping")

        with ahead_of_the_machine(daemon.process.pid, bus.process.pid):
            async with answer_times(ping) as times:
                await client.wait_change(DNS, "Nameservers", LAN_FIRST)  # within its 15 s
                converged = time.monotonic() - continued
                await asyncio.sleep(0.5)  # and a little after
        assert_responsive(times)
        assert (await explain_entry(client, "lan"))["rank"] == "default-route"
    assert nameservers(daemon.resolv_conf) == LAN_FIRST
    print(f"converged {converged:.2f} s after SIGCONT; {len(times)} pings, max {max(times):.3f} s")
