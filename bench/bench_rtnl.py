"""What the rtnetlink watcher costs on a router with a full table, against `ip monitor`.

Run as root, on demand (not a test): ``python bench/bench_rtnl.py [--routes N]``.

In a throw-away namespace it installs N non-default routes (IPv6 /64s from
2001:db8::/32: the only documentation prefix large enough for a BGP-sized
table), starts the watcher in a child process inside the namespace, then
adds and removes `--churn` more routes while probing default-route reaction
latency (netlink ack of a default-route change to the child's on_change).
The floor is `ip monitor route` receiving the same churn in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from pyroute2 import IPRoute  # noqa: E402
from tests.support.netns import Netns, netns  # noqa: E402

from common import cpu_seconds, memory_kib  # noqa: E402


def child() -> None:
    """The watcher inside the namespace; one stdout line per published state."""
    from netpathd.kernel.rtnl import RtnlWatcher  # noqa: PLC0415
    from netpathd.model.links import Family, NetState  # noqa: PLC0415

    def on_change(state: NetState) -> None:
        best = state.best_default_route(Family.IPV4)
        print(f"change {time.monotonic_ns()} {best.metric if best else -1}", flush=True)

    async def main() -> None:
        watcher = RtnlWatcher(on_change)
        started = time.monotonic()
        await watcher.start()
        print(f"ready {time.monotonic() - started:.3f}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(f"route_notifications {watcher.route_notifications}", flush=True)
        await watcher.close()

    asyncio.run(main())


def write_batch(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


def route_lines(verb: str, start: int, count: int) -> list[str]:
    return [
        f"route {verb} 2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64 dev wan0\n"
        for i in range(start, start + count)
    ]


class Child:
    def __init__(self, ns: Netns) -> None:
        argv = ns.exec_argv(sys.executable, __file__, "--child")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buffered = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def line(self, timeout: float = 60.0) -> list[str]:
        """The next line, read unbuffered so select() sees what is really pending."""
        while b"\n" not in self.buffered:
            if not self.selector.select(timeout):
                raise TimeoutError("the watcher child did not answer")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError("the watcher child exited")
            self.buffered += chunk
        line, self.buffered = self.buffered.split(b"\n", 1)
        return line.decode().split()

    def stop(self) -> list[str]:
        self.proc.send_signal(signal.SIGTERM)
        rest = (self.buffered + self.proc.communicate(timeout=30)[0]).decode().split("\n")
        return next(line.split() for line in rest if line.startswith("route_notifications"))


def probe(ipr: IPRoute, watcher: Child, metric: int, add: bool) -> float:
    """Milliseconds from the ack of a default-route change to the watcher's on_change.

    The kernel queues the notification before the ack, so a fast watcher can
    come out slightly negative.
    """
    ipr.route("add" if add else "del", dst="0.0.0.0/0", gateway="192.0.2.1", priority=50)
    acked = time.monotonic_ns()
    while True:
        words = watcher.line()
        if words[0] == "change" and int(words[2]) == metric:
            return (int(words[1]) - acked) / 1e6


def bench(routes: int, churn: int) -> None:
    with netns("npb") as ns, tempfile.TemporaryDirectory() as tmp:
        ns.ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
        ns.ip("link", "set", "wan0", "up")
        ns.ip("link", "set", "wan0p", "up")
        ns.ip("addr", "add", "192.0.2.10/24", "dev", "wan0")
        ns.ip("route", "add", "default", "via", "192.0.2.1", "metric", "100")
        started = time.monotonic()
        table = write_batch(Path(tmp, "table"), route_lines("add", 0, routes))
        subprocess.run(["ip", "-n", ns.name, "-6", "-batch", str(table)], check=True, timeout=300)
        installed = time.monotonic() - started

        watcher = Child(ns)
        ready = watcher.line()
        startup_cpu = cpu_seconds(watcher.proc.pid)
        monitor = subprocess.Popen(
            ["ip", "-n", ns.name, "monitor", "route"], stdout=subprocess.DEVNULL
        )
        time.sleep(0.2)  # let ip monitor subscribe; it announces nothing when ready
        half = churn // 2
        lines = route_lines("add", routes, half) + route_lines("del", routes, half)
        churn_argv = ["ip", "-n", ns.name, "-6", "-batch", str(write_batch(Path(tmp, "c"), lines))]

        # Phase 1, cost: the churn alone, watcher and ip monitor side by side.
        cpu_watcher, cpu_monitor = cpu_seconds(watcher.proc.pid), cpu_seconds(monitor.pid)
        churn_started = time.monotonic()
        subprocess.run(churn_argv, check=True, timeout=120)
        churned = time.monotonic() - churn_started
        time.sleep(0.5)  # let ip monitor drain what is queued
        cpu_watcher = cpu_seconds(watcher.proc.pid) - cpu_watcher
        cpu_monitor = cpu_seconds(monitor.pid) - cpu_monitor
        monitor.terminate()
        monitor.wait(timeout=10)

        # Phase 2, latency: default-route changes every 5 ms while the churn runs again.
        churning = subprocess.Popen(churn_argv)
        latencies = []
        with IPRoute(netns=ns.name) as ipr:
            while churning.poll() is None or len(latencies) < 20:
                latencies.append(probe(ipr, watcher, 50, add=True))
                time.sleep(0.005)
                latencies.append(probe(ipr, watcher, 100, add=False))
                time.sleep(0.005)
        rss, hwm = memory_kib(watcher.proc.pid, "VmRSS"), memory_kib(watcher.proc.pid, "VmHWM")
        notifications = watcher.stop()[1]

    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"table: {routes} routes installed in {installed:.1f} s; churn: {churn} changes")
    print(f"{'measure':44} {'watcher':>10} {'floor':>10} {'ratio':>8}")
    ratio = cpu_watcher / cpu_monitor if cpu_monitor else float("nan")
    print(
        f"{'CPU during churn (s), floor = ip monitor':44} {cpu_watcher:10.3f} {cpu_monitor:10.3f}"
    )
    print(f"{'  watcher / ip monitor':44} {'':10} {'':10} {ratio:8.3f}")
    print(f"{'startup: dump wall (s) / CPU (s)':44} {ready[1]:>10} {startup_cpu:10.3f}")
    print(f"{'RSS after churn / peak (MiB)':44} {rss / 1024:10.1f} {hwm / 1024:10.1f}")
    print(f"{'route notifications reaching the watcher *':44} {notifications:>10}")
    print(
        f"{'default-route latency ms (n=' + str(len(latencies)) + ') median / p99':44} "
        f"{statistics.median(latencies):10.3f} {p99:10.3f}"
    )
    print(f"{'churn wall time (s)':44} {churned:10.1f}")
    print("* all of them are the probes' default-route changes, one per probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1_000_000)
    parser.add_argument("--churn", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
    else:
        bench(args.routes, args.churn)


if __name__ == "__main__":
    main()
