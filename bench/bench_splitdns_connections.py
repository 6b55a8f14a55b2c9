"""Split DNS with many connections, against the real dnsmasq and systemd-resolved: one change.

Run as root, on demand (not a test): ``python3 bench/bench_splitdns_connections.py
[--sizes 10,100,1000] [--calls N]``.  Needs dnsmasq, and systemd-resolved extracted by
scripts/setup (never installed).

The loop of ``bench_dns_connections.measure_split`` (``Set runtime``, ``Set domain``,
``rewrite``: the daemon's DNS half in-process, N connections on N links) runs twice per
size: once with a stand-in bus that answers at once (netpathd's work alone, the in-run
reference), once against the real back-end on a private bus, each push awaited until the
back-end answered its last call, so the difference is the bus round trips and the back-end's
own work.  The N links are real (bridges ``eth1``.. up in a throw-away namespace, since
resolved refuses an ifindex it does not know); dnsmasq and resolved run in that namespace as
tests/integration does.  Another in-run reference: one ``GetVersion`` (dnsmasq) or
``org.freedesktop.DBus.Peer.Ping`` (resolved) round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from dbus_fast import BusType, Message  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from tests.support.bus import PrivateBus, private_bus  # noqa: E402
from tests.support.netns import Netns, netns  # noqa: E402
from tests.support.resolved import holder, holder_bus, resolved  # noqa: E402

from bench_dns_connections import SplitMedians, measure_split  # noqa: E402
from netpathd.dns_backends import dnsmasq  # noqa: E402
from netpathd.model.dns_plan import DnsMode  # noqa: E402

RESOLVED_CALL = ("org.freedesktop.resolve1", "/org/freedesktop/resolve1", "Peer", "Ping")


def bridges(ns: Netns, size: int) -> list[int]:
    """``eth1``..``eth{size}`` up in ``ns`` (bridges: one interface each); their ifindexes."""
    lines = [f"link add eth{i} type bridge\nlink set eth{i} up\n" for i in range(1, size + 1)]
    subprocess.run(
        ["ip", "-n", ns.name, "-batch", "-"], input="".join(lines), text=True, check=True
    )
    shown = json.loads(ns.ip("-j", "link", "show", "type", "bridge").stdout)
    by_name = {link["ifname"]: link["ifindex"] for link in shown}
    return [by_name[f"eth{i}"] for i in range(1, size + 1)]


@contextmanager
def real_backend(mode: DnsMode, ns: Netns, workdir: Path) -> Iterator[PrivateBus]:
    """The back-end of ``mode`` running in ``ns`` on a private bus of its own."""
    with ExitStack() as stack:
        if mode is DnsMode.SYSTEMD_RESOLVED:
            held = stack.enter_context(holder(ns, workdir))
            bus = stack.enter_context(holder_bus(held))
            stack.enter_context(resolved(held, bus))
            yield bus
            return
        bus = stack.enter_context(private_bus())
        binary = dnsmasq.find_dnsmasq()
        assert binary is not None, "install dnsmasq-base"
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
        argv = ns.exec_argv(*dnsmasq.dnsmasq_argv(binary, None))
        process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        stack.callback(process.wait, 10)
        stack.callback(process.terminate)
        yield bus


async def connected(address: str, mode: DnsMode) -> tuple[MessageBus, float]:
    """A client of the back-end once it answers; the median of 20 bare round trips."""
    bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    if mode is DnsMode.DNSMASQ:
        call = (dnsmasq.BUS_NAME, dnsmasq.OBJECT_PATH, dnsmasq.BUS_NAME, "GetVersion")
    else:
        call = (RESOLVED_CALL[0], RESOLVED_CALL[1], "org.freedesktop.DBus.Peer", "Ping")
    destination, path, interface, member = call
    rounds: list[float] = []
    deadline = time.monotonic() + 60  # a namespace with many links is still being deleted
    while len(rounds) < 20:
        started = time.perf_counter()
        reply = await bus.call(
            Message(destination=destination, path=path, interface=interface, member=member)
        )
        if reply is not None and reply.error_name is None:
            rounds.append(time.perf_counter() - started)
        elif time.monotonic() > deadline:
            raise RuntimeError(f"{destination} did not answer: {reply and reply.error_name}")
        else:
            await asyncio.sleep(0.02)  # still starting: it owns its name within ~100 ms
    return bus, statistics.median(rounds) * 1e3


async def sweep(mode: DnsMode, size: int, calls: int) -> tuple[SplitMedians, SplitMedians, float]:
    with tempfile.TemporaryDirectory(prefix="bench-split-n-") as name, netns() as ns:
        ifindexes = bridges(ns, size)
        with real_backend(mode, ns, Path(name)) as bus:
            client, round_trip = await connected(bus.address, mode)
            try:
                alone = await measure_split(size, calls, mode, None, ifindexes)
                real = await measure_split(size, calls, mode, client, ifindexes)
            finally:
                client.disconnect()
    return alone, real, round_trip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--modes", default="dnsmasq,systemd-resolved")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"medians in ms over {args.calls} calls; 'alone': stand-in bus, 'real': the back-end")
    print(f"{'mode':>17}{'N':>7}{'Set runtime':>20}{'Set domain':>20}{'rewrite':>20}"
          f"{'round trip':>12}")  # fmt: skip
    print(f"{'':>24}{'alone / real':>20}{'alone / real':>20}{'alone / real':>20}")
    for mode in [DnsMode(mode) for mode in args.modes.split(",")]:
        for size in sizes:
            alone, real, round_trip = asyncio.run(sweep(mode, size, args.calls))
            cells = [
                f"{a:.2f} / {r:.2f}"
                for a, r in (
                    (alone.runtime, real.runtime),
                    (alone.domain, real.domain),
                    (alone.rewrite, real.rewrite),
                )
            ]
            print(f"{mode.value:>17}{size:>7}{cells[0]:>20}{cells[1]:>20}{cells[2]:>20}"
                  f"{round_trip:>12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
