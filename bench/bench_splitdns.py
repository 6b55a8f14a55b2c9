"""Split DNS: how fast a default-route change is active in dnsmasq and in systemd-resolved,
against the same change in dns=default, and how fast a killed back-end is restored.

Run as root, on demand (not a test): ``python3 bench/bench_splitdns.py [--samples N]``.
Needs dnsmasq, and systemd-resolved extracted by scripts/setup (never installed).

Topology, per mode, in throw-away namespaces (tests/support/dns_servers.py): the client has
wan0 (203.0.113.2, default metric 100) and corp0 (198.51.100.2); a stand-in server behind
each answers every name with its own address.  Two ethernet connections, one per link, no
domains: the default domain goes to whichever link holds the best default route.  A probe
sends one prebuilt RTM_NEWROUTE (default via corp0, metric 50) or RTM_DELROUTE of it on a raw
netlink socket inside the namespace; time 0 is taken just before send().  "Active" is:

* dns=default: the resolver file's first nameserver is the new link's server (read in a loop);
* dns=dnsmasq / systemd-resolved: a query for a fresh name to 127.0.0.1 / 127.0.0.53, sent
  in a loop from a UDP socket inside the namespace, is answered by the new link's server.

Restore: kill -9 of netpathd's dnsmasq (netpathd restarts it) or of resolved (restarted at
once, as systemd's Restart= would), ROUNDS times in a row; for dnsmasq the rounds show the
back-off (immediate after a stable run, then 0.5 s, 1 s, ... while it keeps dying).
Reference in the same run: the first answer of any kind (REFUSED included) from the new
process, i.e. the back-end's own start-up; the difference is netpathd noticing and pushing
the whole configuration again.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from tests.integration.split_dns import default_route  # noqa: E402
from tests.support.bus import PrivateBus, private_bus  # noqa: E402
from tests.support.dns_servers import stand_in  # noqa: E402
from tests.support.netns import Netns, netns  # noqa: E402
from tests.support.resolved import Resolved, holder, holder_bus, resolved  # noqa: E402

from bench_dns import check_ack, netlink_in, route_message  # noqa: E402
from common import Notified, percentile, ratio, start_daemon, table  # noqa: E402

WAN, CORP = "203.0.113.53", "198.51.100.53"
TIMEOUT_S = 10.0
CONNECTIONS = """\
[connection "wan"]
connection.interface-name = wan0
connection.type = ethernet
ipv4.dns = 203.0.113.53

[connection "corp"]
connection.interface-name = corp0
connection.type = ethernet
ipv4.dns = 198.51.100.53
"""
LOCAL = {"dnsmasq": "127.0.0.1", "systemd-resolved": "127.0.0.53"}
_names = itertools.count()


def udp_in(ns: Netns) -> socket.socket:
    """A UDP socket living in ``ns`` (setns around socket(), as bench_dns.netlink_in does)."""
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
    try:
        libc.setns(target, 0x40000000)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        finally:
            libc.setns(home, 0x40000000)
    finally:
        os.close(home)
        os.close(target)
    return sock


class Prober:
    """Queries for fresh names, one in flight at a time, resent every RESEND_S.

    dnsmasq drops the queries it is forwarding when its servers change (--clear-on-reload
    semantics), so a lost query is resent at once instead of waiting for a timeout; the
    answer to any query sent so far is accepted, so a slow answer is not wasted.
    """

    RESEND_S = 0.005

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: set[int] = set()
        self.idents = itertools.count(1)

    def ask(self, server: str) -> tuple[int, str | None] | None:
        """(rcode, first A record) of the next answer, None when none came within RESEND_S."""
        ident = next(self.idents) % 65536
        self.sent.add(ident)
        name = f"b{ident}x{time.monotonic_ns()}.example.org"
        labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
        header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        self.sock.settimeout(self.RESEND_S)
        try:
            self.sock.sendto(header + labels + b"\0\0\1\0\1", (server, 53))
            while True:
                data, _ = self.sock.recvfrom(4096)
                if struct.unpack_from("!H", data)[0] in self.sent:
                    break
        except (TimeoutError, ConnectionRefusedError):
            return None
        self.sent.clear()  # older queries reflect an older state: ignore their late answers
        rcode = struct.unpack_from("!H", data, 2)[0] & 0xF
        answers = struct.unpack_from("!H", data, 6)[0]
        return rcode, socket.inet_ntoa(data[-4:]) if answers else None


def first_nameserver(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    return next((line.split()[1] for line in lines if line.startswith("nameserver")), None)


def until(predicate: Callable[[], bool], what: str) -> int:
    """Nanoseconds until ``predicate`` holds, checked in a tight loop."""
    start = time.monotonic_ns()
    while not predicate():
        if time.monotonic_ns() - start > TIMEOUT_S * 1e9:
            raise RuntimeError(f"{what}: not within {TIMEOUT_S}s")
    return time.monotonic_ns() - start


@dataclass
class Run:
    mode: str
    ns: Netns
    workdir: Path
    daemon: Notified
    resolved: Resolved | None

    def active(self, prober: Prober, server: str) -> bool:
        if self.mode == "default":
            return first_nameserver(self.workdir / "resolv.conf") == server
        answer = prober.ask(LOCAL[self.mode])
        return answer is not None and answer[1] == server


@contextmanager
def frame(mode: str) -> Iterator[Run]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-split-")))
        ns = stack.enter_context(netns())
        stack.enter_context(stand_in(ns, "wan0", "203.0.113", workdir))
        stack.enter_context(stand_in(ns, "corp0", "198.51.100", workdir))
        default_route(ns, "wan0", WAN, 100)
        running: Resolved | None = None
        bus: PrivateBus
        if mode == "systemd-resolved":
            held = stack.enter_context(holder(ns, workdir))
            bus = stack.enter_context(holder_bus(held))
            running = stack.enter_context(resolved(held, bus))
        else:
            bus = stack.enter_context(private_bus())
        for sub in ("config", "state"):
            (workdir / sub).mkdir()
        (workdir / "config" / "netpathd.conf").write_text(f"[main]\ndns = {mode}\n")
        (workdir / "state" / "dns.conf").write_text(CONNECTIONS)
        daemon = start_daemon(ns, bus, workdir)
        stack.callback(daemon.stop)
        daemon.wait_ready()
        yield Run(mode, ns, workdir, daemon, running)


def flips(run: Run, samples: int) -> list[float]:
    """Milliseconds from the route change to the new server being active, both directions."""
    nl = netlink_in(run.ns)
    sock = udp_in(run.ns)
    prober = Prober(sock)
    ifindex = int(run.ns.exec("cat", "/sys/class/net/corp0/ifindex").stdout)
    until(lambda: run.active(prober, WAN), f"{run.mode}: initial configuration")
    times = []
    for seq in range(samples):
        add = seq % 2 == 0
        message = route_message(add, ifindex, CORP, 50, seq + 1)
        start = time.monotonic_ns()
        nl.send(message)
        check_ack(nl)
        wanted = CORP if add else WAN
        until(lambda: run.active(prober, wanted), f"{run.mode}: flip {seq}")  # noqa: B023
        times.append((time.monotonic_ns() - start) / 1e6)
    nl.close()
    sock.close()
    return times


def backend_pid(run: Run) -> int:
    if run.resolved is not None:
        assert run.resolved.process is not None
        return run.resolved.process.pid
    out = run.ns.exec("ss", "-Hlnup", "src", "127.0.0.1:53").stdout
    return next(int(p.split("=")[1].rstrip(",)")) for p in out.split(",") if p.startswith("pid="))


def restores(run: Run, rounds: int) -> tuple[list[float], list[float]]:
    """(ms until any answer, ms until the right answer) after kill -9 of the back-end."""
    sock = udp_in(run.ns)
    prober = Prober(sock)
    until(lambda: run.active(prober, WAN), f"{run.mode}: before the kill")
    any_ms, right_ms = [], []
    for _ in range(rounds):
        pid = backend_pid(run)
        start = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        if run.resolved is not None:
            run.resolved.process.wait()  # type: ignore[union-attr]
            run.resolved.start()
        else:
            until(lambda: backend_pid_changed(run, pid), "dnsmasq restarted")  # noqa: B023
        until(lambda: prober.ask(LOCAL[run.mode]) is not None, "any answer")
        any_ms.append((time.monotonic_ns() - start) / 1e6)
        until(lambda: run.active(prober, WAN), "restored")
        right_ms.append((time.monotonic_ns() - start) / 1e6)
    sock.close()
    return any_ms, right_ms


def backend_pid_changed(run: Run, old: int) -> bool:
    try:
        return backend_pid(run) != old
    except StopIteration:
        return False


def summary(values: list[float]) -> tuple[str, str]:
    return f"{statistics.median(values):.2f}", f"{percentile(values, 0.99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="route changes per mode")
    parser.add_argument("--restarts", type=int, default=5, help="kill -9 rounds per back-end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_splitdns.py: run as root (it creates network namespaces)")

    flip_ms: dict[str, list[float]] = {}
    restore_ms: dict[str, tuple[list[float], list[float]]] = {}
    for mode in ("default", "dnsmasq", "systemd-resolved"):
        with frame(mode) as run:
            flip_ms[mode] = flips(run, args.samples)
            if mode != "default":
                restore_ms[mode] = restores(run, args.restarts)

    reference = statistics.median(flip_ms["default"])
    rows: list[tuple[str, ...]] = []
    for mode, values in flip_ms.items():
        median, p99 = summary(values)
        rows.append((mode, median, p99, ratio(statistics.median(values), reference)))
    table(
        f"default-route change -> new configuration active ({args.samples} changes, ms)",
        ("mode", "median", "p99", "x dns=default"),
        rows,
    )
    print()
    rows = []
    for mode, (any_values, right_values) in restore_ms.items():
        any_median, _ = summary(any_values)
        right_median, right_p99 = summary(right_values)
        rows.append(
            (
                mode,
                right_median,
                right_p99,
                any_median,
                ratio(statistics.median(right_values), statistics.median(any_values)),
                " ".join(f"{value:.0f}" for value in right_values),
            )
        )
    table(
        f"kill -9 of the back-end -> the right server answers again ({args.restarts} rounds, ms)",
        ("back-end", "median", "p99", "first answer (ref)", "x ref", "each round"),
        rows,
    )


if __name__ == "__main__":
    main()
