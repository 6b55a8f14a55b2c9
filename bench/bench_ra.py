"""How fast a router advertisement's DNS servers reach the resolver file, against the same
change made with SetConnectionRuntime over D-Bus, in one run.

Run as root, on demand (not a test): ``python3 bench/bench_ra.py [--samples N]``.

Topology, in throw-away namespaces: the daemon's namespace holds lan0, a veth whose peer
lan0r sits in a router namespace with the link-local address fe80::1 (no DAD).  A raw
ICMPv6 socket opened inside the router namespace (setns only for the socket() call) sends
prebuilt RAs: RDNSS 2001:db8::53 with lifetime 600, then the same with lifetime 0, so
each probe adds or withdraws the server.  The reference toggles ipv6.dns of a runtime
connection on the same link between 2001:db8::54 and nothing.  Time 0 is taken just
before sendto() or the D-Bus call; the end is the IN_MOVED_TO of the resolver file's
rename (bench_dns.RenameWatch, a thread blocked on inotify).  The RA's arrival is the
moment a second listener on RTNLGRP_ND_USEROPT in the daemon's namespace (a thread
blocked in recv() here) gets the same message: sent -> arrival is the kernel's part
(veth, softirq, ndisc), arrival -> rename netpathd's.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from dbus_fast import Variant

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from tests.support.bus import private_bus  # noqa: E402
from tests.support.dbus_client import BusClient, bus_client  # noqa: E402
from tests.support.netns import Netns, netns, veth  # noqa: E402
from tests.support.ra import ROUTER_ADDRESS, advertisement, prepare, rdnss  # noqa: E402

from bench_dns import RenameWatch, Stamps  # noqa: E402
from common import entered, percentile, ratio, start_daemon, table  # noqa: E402

TIMEOUT_S = 5.0
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_ND_USEROPT = 270, 1, 20
RA_SERVER, BUS_SERVER = "2001:db8::53", "2001:db8::54"


def inside(ns: Netns, family: int, kind: int, proto: int, link: str) -> tuple[socket.socket, int]:
    """A socket living in ``ns`` and ``link``'s index there."""
    with entered(ns):
        return socket.socket(family, kind, proto), socket.if_nametoindex(link)


class UserOptWatch(Stamps):
    """The RA's arrival: RTM_NEWNDUSEROPT on a listener of our own in the daemon's namespace."""

    def __init__(self, ns: Netns, link: str) -> None:
        super().__init__()
        self.sock, _ = inside(ns, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE, link)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_ND_USEROPT)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while self.sock.recv(65536):
            self.queue.put(time.monotonic_ns())


def icmpv6_in(ns: Netns, link: str) -> tuple[socket.socket, int]:
    """A raw ICMPv6 socket living in ``ns``, bound to fe80::1 on ``link``."""
    sock, index = inside(ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, link)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    sock.bind((ROUTER_ADDRESS, 0, 0, index))
    return sock, index


def wait_rename(watch: RenameWatch, started: int) -> float:
    stamp = watch.next(TIMEOUT_S)
    if stamp is None:
        raise RuntimeError("no rename of the resolver file within the timeout")
    return (stamp - started) / 1e6


def ra_samples(
    sock: socket.socket, index: int, watch: RenameWatch, arrivals: UserOptWatch, count: int
) -> tuple[list[float], list[float], list[float]]:
    """(sent -> renamed, sent -> arrived, arrived -> renamed), ms."""
    packets = [advertisement(rdnss([RA_SERVER], 600)), advertisement(rdnss([RA_SERVER], 0))]
    total, kernel, daemon = [], [], []
    for i in range(count):
        watch.drain()
        arrivals.drain()
        started = time.monotonic_ns()
        sock.sendto(packets[i % 2], ("ff02::1", 0, 0, index))
        renamed = wait_rename(watch, started)
        arrived = arrivals.next(TIMEOUT_S)
        if arrived is None:
            raise RuntimeError("our own ND user option listener saw nothing")
        total.append(renamed)
        kernel.append((arrived - started) / 1e6)
        daemon.append(renamed - kernel[-1])
    return total, kernel, daemon


async def bus_samples(client: BusClient, watch: RenameWatch, count: int) -> list[float]:
    values = [[BUS_SERVER], []]
    samples = []
    for i in range(count):
        watch.drain()
        settings = {"ipv6.dns": Variant("as", values[i % 2])}
        started = time.monotonic_ns()
        await client.call(
            "org.netpathd1.Dns", "SetConnectionRuntime", "sa{sv}", ["probe", settings]
        )
        samples.append(wait_rename(watch, started))
    return samples


async def reference(address: str, watch: RenameWatch, count: int) -> list[float]:
    async with bus_client(address) as client:
        base = {
            "connection.interface-name": Variant("s", "lan0"),
            "connection.type": Variant("s", "ethernet"),
            "ipv4.dns": Variant("as", ["192.0.2.53"]),  # the file never empties
        }
        await client.call("org.netpathd1.Dns", "SetConnectionRuntime", "sa{sv}", ["probe", base])
        await bus_samples(client, watch, 10)  # warm-up, discarded
        return await bus_samples(client, watch, count)


def stats(values: list[float]) -> tuple[str, str]:
    return f"{statistics.median(values):.2f}", f"{percentile(values, 0.99):.2f}"


def bench(args: argparse.Namespace) -> None:
    sys.setswitchinterval(1e-4)  # the stamping thread must get the GIL at once
    with (
        netns("npr") as ns,
        netns("rtr") as router,
        private_bus() as bus,
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        workdir = Path(tmp_name)
        prepare(ns, router)
        veth(ns, "lan0", router, "lan0r")
        router.ip("addr", "add", f"{ROUTER_ADDRESS}/64", "dev", "lan0r", "nodad")
        daemon = start_daemon(ns, bus, workdir)
        try:
            daemon.wait_ready()
            watch = RenameWatch(workdir, "resolv.conf")
            bus_ms = asyncio.run(reference(bus.address, watch, args.samples))
            sock, index = icmpv6_in(router, "lan0r")
            arrivals = UserOptWatch(ns, "lan0")
            ra_samples(sock, index, watch, arrivals, 10)  # warm-up, discarded
            ra_ms, kernel_ms, daemon_ms = ra_samples(sock, index, watch, arrivals, args.samples)
        finally:
            daemon.stop()
    (ra_median, ra_p99), (bus_median, bus_p99) = stats(ra_ms), stats(bus_ms)
    table(
        f"change -> resolver file renamed, ms ({args.samples} samples each, one run)",
        ("path", "median", "p99"),
        [
            ("RA sent -> renamed (RDNSS add / withdraw)", ra_median, ra_p99),
            ("  of which: sent -> arrived (kernel)", *stats(kernel_ms)),
            ("  of which: arrived -> renamed (netpathd)", *stats(daemon_ms)),
            ("SetConnectionRuntime", bus_median, bus_p99),
            (
                "ratio RA sent / D-Bus",
                ratio(statistics.median(ra_ms), statistics.median(bus_ms)),
                ratio(percentile(ra_ms, 0.99), percentile(bus_ms, 0.99)),
            ),
            (
                "ratio RA arrived / D-Bus",
                ratio(statistics.median(daemon_ms), statistics.median(bus_ms)),
                ratio(percentile(daemon_ms, 0.99), percentile(bus_ms, 0.99)),
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
