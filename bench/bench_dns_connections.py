"""What one DNS connection change and one resolver rewrite cost with many connections configured.

Run on demand (not a test; no root needed): ``python bench/bench_dns_connections.py
[--sizes 10,100,1000,10000] [--calls N]``.

Issue 13 target 4: ``SetConnection`` ≤ 2 ms median and a resolver rewrite ≤ 5 ms with 1,000
connections, about flat in N.  The daemon's DNS half (``DnsManager``) runs in-process on N
links (``eth1``..), each with one connection bound to it, loaded from a state file as at start;
no D-Bus and no kernel, so the figure is netpathd's own work plus its file writes.

* ``SetConnection``: ``set_connection()`` of one connection's ``ipv4.dns-priority``, persisted
  (the state file written atomically with fsync) and runtime-only;
* resolver rewrite: the best default route moves to another link, so the order changes and
  the resolver file is rewritten (fsync'ed, as at every reorder).  The new network state is
  what the daemon's reducers (``model.netstate.apply``) make of the kernel's RTM_DELROUTE and
  RTM_NEWROUTE, as the rtnetlink watcher hands it over; ``--fresh-states`` builds a whole new
  snapshot instead, as only a full re-dump (after a netlink overrun) does;
* routed plan: building the domain routes and per-link view once more after a change, which
  only the dnsmasq and systemd-resolved back-ends ask for (dns=default builds them only when
  ExplainDomains is called);
* the in-run reference: ``write_atomic()`` of a file of the same size in the same directory,
  the fsync floor no implementation avoids, and the N=10 row for the growth.

The second table is the same changes under ``dns=dnsmasq`` and ``dns=systemd-resolved``:
the manager's part (order, routed plan, the comparison with the plan applied), then the
back-end's push as the daemon's push task runs it (``push()`` of the real back-end class:
the ``SetServersEx`` list or the ``SetLink*`` calls, each message marshalled) and the
resolver file.  Here a stand-in bus answers every call at once, so the figure is
netpathd's work alone; ``bench_splitdns_connections.py`` runs the same loop against the real
dnsmasq and systemd-resolved.  Three changes: ``Set runtime`` (a priority that decides no
contest), ``Set domain`` (a connection's search domain replaced: every back-end must
hear of it) and ``rewrite`` (the best default route, hence ``.``, moves to another link).
The reference is the dns=default ``Set runtime`` of the first table, same N, same run.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from dbus_fast import Message, MessageType  # noqa: E402

from netpathd.dns_backends.base import BackendContext, PushingBackend  # noqa: E402
from netpathd.dns_backends.dnsmasq import DnsmasqBackend  # noqa: E402
from netpathd.dns_backends.resolved import ResolvedBackend  # noqa: E402
from netpathd.dns_manager import DnsManager  # noqa: E402
from netpathd.files.atomic import write_atomic  # noqa: E402
from netpathd.files.config import read_config_text  # noqa: E402
from netpathd.files.resolv_conf import RcManager  # noqa: E402
from netpathd.model.dns import DnsConnection, DnsFamilyConfig  # noqa: E402
from netpathd.model.dns_plan import DnsMode, DnsPlan  # noqa: E402
from netpathd.model.dns_settings import DnsConfig, render_connections_file  # noqa: E402
from netpathd.model.links import DefaultRoute, Family, Link, NetState  # noqa: E402
from netpathd.model.netstate import RouteGone, RouteSeen, apply_all  # noqa: E402


def network(size: int, best: int, ifindexes: list[int] | None = None) -> NetState:
    """``size`` links up, each with a default route; link ``best`` holds the lowest metric.

    ``eth{i}`` has ifindex ``i``, or ``ifindexes[i - 1]`` when the links are real ones.
    """
    numbers = ifindexes or list(range(1, size + 1))
    links = {ifindex: Link(ifindex, f"eth{i}", up=True) for i, ifindex in enumerate(numbers, 1)}
    routes = {
        DefaultRoute(Family.IPV4, ifindex, metric=10 if i == best else 100 + i)
        for i, ifindex in enumerate(numbers, 1)
    }
    return NetState(links=links, default_routes=routes)


def moved_best(state: NetState, previous: DefaultRoute | None, ifindex: int) -> NetState:
    """The state after the kernel replaced the best route ``previous`` by one on ``ifindex``."""
    events: list[RouteGone | RouteSeen] = [] if previous is None else [RouteGone(previous)]
    return apply_all(state, [*events, RouteSeen(DefaultRoute(Family.IPV4, ifindex, metric=5))])


def connections(size: int) -> DnsConfig:
    conns = tuple(
        DnsConnection(
            f"c{i}",
            interface_name=f"eth{i}",
            type="ethernet",
            ipv4=DnsFamilyConfig(
                servers=(ipaddress.ip_address(f"203.0.113.{i % 250 + 1}"),),
                search=(f"site{i}.example",),
            ),
            created_seq=i,
        )
        for i in range(1, size + 1)
    )
    return DnsConfig(connections=conns)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def loaded(workdir: Path, size: int, resolver_dir: Path | None = None) -> DnsManager:
    """A manager with ``size`` connections, loaded from a state file as at start.

    The resolver file is in ``resolver_dir`` when given, else beside the state directory.
    """
    for sub in ("config", "state"):
        (workdir / sub).mkdir()
    (workdir / "state" / "dns.conf").write_text(render_connections_file(connections(size)))
    resolver = (resolver_dir or workdir) / "resolv.conf"
    dns = DnsManager(workdir / "config", workdir / "state", resolver, RcManager.FILE)
    dns.load()
    return dns


def measure(size: int, calls: int, fresh: bool, resolver_parent: str | None) -> tuple[float, ...]:
    with (
        tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name,
        tempfile.TemporaryDirectory(prefix="resolver-", dir=resolver_parent or name) as resolver,
    ):
        workdir = Path(name)
        dns = loaded(workdir, size, Path(resolver))
        state = network(size, best=1)
        dns.update_network(state)
        # The first save moves an old single state file into one file per connection.
        dns.set_connection("c1", {"ipv4.dns-priority": 1}, runtime=False)
        persisted, runtime, rewrites, routed, floor = [], [], [], [], []
        best: DefaultRoute | None = None
        for call in range(calls):
            target = f"c{(call * 7919) % size + 1}"
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-priority": 50 + call % 2}, runtime=False)
            persisted.append(time.perf_counter() - started)
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-priority": 60 + call % 2}, runtime=True)
            runtime.append(time.perf_counter() - started)
            started = time.perf_counter()
            _ = dns.plan
            routed.append(time.perf_counter() - started)
            if fresh:
                state = network(size, best=2 + call % 2)
            else:
                state = moved_best(state, best, 2 + call % 2)
                best = DefaultRoute(Family.IPV4, 2 + call % 2, metric=5)
            started = time.perf_counter()
            dns.update_network(state)
            rewrites.append(time.perf_counter() - started)
            text = dns.resolv_conf.read_bytes()
            started = time.perf_counter()
            write_atomic(workdir / "floor", text)
            floor.append(time.perf_counter() - started)
    return tuple(median_ms(samples) for samples in (persisted, runtime, rewrites, routed, floor))


def measure_load(size: int, calls: int) -> tuple[float, float]:
    """A start's read of ``size`` connection files (``DnsManager.load``), and the reads alone."""
    with tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name:
        workdir = Path(name)
        dns = loaded(workdir, size)
        dns.set_connection("c1", {"ipv4.dns-priority": 1}, runtime=False)  # one file each
        files = sorted((workdir / "state").rglob("*.conf"))
        loads, reads = [], []
        for _ in range(calls):
            started = time.perf_counter()
            DnsManager(
                workdir / "config", workdir / "state", workdir / "resolv.conf", RcManager.FILE
            ).load()
            loads.append(time.perf_counter() - started)
            started = time.perf_counter()
            for path in files:
                read_config_text(path)
            reads.append(time.perf_counter() - started)
    return median_ms(loads), median_ms(reads)


class Held:
    """The manager's back-end here: it keeps the plan for the bench to push, no task."""

    routes_domains = True
    state = "running"

    def __init__(self, mode: DnsMode) -> None:
        self.mode = mode
        self.plan: DnsPlan | None = None

    def apply(self, plan: DnsPlan) -> None:
        self.plan = plan

    async def close(self) -> None:
        """Nothing runs."""


class AnsweringBus:
    """Marshals every message as the real bus would, and answers it at once."""

    def add_message_handler(self, handler: Callable[[Message], Any]) -> None:
        """No signals come."""

    async def call(self, message: Message) -> Message:
        message._marshall(False)  # the bytes the daemon would write
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1)


@dataclass
class SplitMedians:
    runtime: float
    domain: float
    rewrite: float
    push: float  # of the three changes, the back-end's part (median of all)


def split_backend(mode: DnsMode, bus: Any, files: Any, workdir: Path) -> PushingBackend:
    context = BackendContext(bus, None, files, workdir, lambda _state: None)
    if mode is DnsMode.DNSMASQ:
        backend = DnsmasqBackend(context)
        backend._process = object()  # type: ignore[assignment]  # the caller runs dnsmasq
        return backend
    return ResolvedBackend(context)


async def measure_split(
    size: int,
    calls: int,
    mode: DnsMode,
    bus: Any = None,
    ifindexes: list[int] | None = None,
) -> SplitMedians:
    """The three changes under ``mode``: manager, push and resolver file, per change."""
    with tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name:
        workdir = Path(name)
        dns = loaded(workdir, size)
        held = Held(mode)
        backend = split_backend(mode, bus or AnsweringBus(), dns.resolver_file, workdir)
        dns.hold(held)
        state = network(size, 1, ifindexes)
        numbers = ifindexes or list(range(1, size + 1))
        dns.update_network(state)
        pushes: list[float] = []

        async def push() -> None:
            plan = held.plan
            if plan is None:
                return
            started = time.perf_counter()
            await backend.push(plan)
            dns.resolver_file.write(plan.resolver, backend.resolver_link())
            pushes.append(time.perf_counter() - started)

        await push()
        pushes.clear()
        runtime, domain, rewrites = [], [], []
        best: DefaultRoute | None = None
        for call in range(calls):
            index = (call * 7919) % size + 1
            target = f"c{index}"
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-priority": 60 + call % 2}, runtime=True)
            await push()
            runtime.append(time.perf_counter() - started)
            search = [f"site{index}.example", f"v{call % 2}.site{index}.example"]
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-search": search}, runtime=True)
            await push()
            domain.append(time.perf_counter() - started)
            holder = numbers[1 + call % 2]  # eth2, eth3, eth2...
            state = moved_best(state, best, holder)
            best = DefaultRoute(Family.IPV4, holder, metric=5)
            started = time.perf_counter()
            dns.update_network(state)
            await push()
            rewrites.append(time.perf_counter() - started)
        await backend.stop_pushing()
    return SplitMedians(
        median_ms(runtime), median_ms(domain), median_ms(rewrites), median_ms(pushes)
    )


def print_split(
    sizes: list[int], rows: dict[DnsMode, list[SplitMedians]], reference: list[float]
) -> None:
    print(f"\n{'mode':>17}{'N':>7}{'Set runtime':>13}{'Set domain':>12}{'rewrite':>9}"
          f"{'of which push':>15}{'dns=default Set':>17}"
          f"{'growth (domain, rewrite)':>26}")  # fmt: skip
    for mode, medians in rows.items():
        for size, row, ref in zip(sizes, medians, reference, strict=True):
            first = medians[0]
            print(
                f"{mode.value:>17}{size:>7}{row.runtime:>13.2f}{row.domain:>12.2f}"
                f"{row.rewrite:>9.2f}{row.push:>15.2f}{ref:>17.2f}"
                f"{row.domain / first.domain:>18.1f}x{row.rewrite / first.rewrite:>7.1f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--fresh-states", action="store_true", help="a new snapshot per rewrite")
    parser.add_argument("--no-split", action="store_true", help="dns=default only")
    parser.add_argument("--load-calls", type=int, default=5, help="loads timed per size")
    parser.add_argument(
        "--resolver-dir",
        help="where the resolver file is written (default: beside the state directory, under "
        "$TMPDIR); /dev/shm is the shipped unit's layout: its --resolv-conf is on /run (tmpfs) "
        "while the state directory is on disk",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    reference: list[float] = []
    print(f"medians in ms over {args.calls} calls; growth = against the first size")
    print(
        f"state directory under {tempfile.gettempdir()}, resolver file under "
        f"{args.resolver_dir or tempfile.gettempdir()}"
    )
    print(f"{'N':>6}{'Set persisted':>15}{'Set runtime':>13}{'rewrite':>10}{'routed plan':>13}"
          f"{'fsync floor':>13}{'growth (Set, rewrite)':>23}")  # fmt: skip
    first: tuple[float, ...] = ()
    for size in sizes:
        persisted, runtime, rewrite, routed, floor = measure(
            size, args.calls, args.fresh_states, args.resolver_dir
        )
        reference.append(runtime)
        first = first or (persisted, rewrite)
        print(
            f"{size:>6}{persisted:>15.2f}{runtime:>13.2f}{rewrite:>10.2f}{routed:>13.2f}"
            f"{floor:>13.2f}{persisted / first[0]:>15.1f}x{rewrite / first[1]:>7.1f}x"
        )
    print("targets at N=1000: Set ≤ 2 ms median, rewrite ≤ 5 ms median")
    print(f"\nloading the connection files at start, medians in ms over {args.load_calls} loads")
    print(f"{'N':>6}{'load':>10}{'files read alone':>18}{'per connection':>16}")
    for size in sizes:
        load, read = measure_load(size, args.load_calls)
        print(f"{size:>6}{load:>10.2f}{read:>18.2f}{load / size * 1e3:>13.1f} µs")
    if args.no_split:
        return
    modes = (DnsMode.DNSMASQ, DnsMode.SYSTEMD_RESOLVED)
    rows = {
        mode: [asyncio.run(measure_split(size, args.calls, mode)) for size in sizes]
        for mode in modes
    }
    print_split(sizes, rows, reference)
    print("target at N=1000: a change ≤ 5 ms of netpathd's work (stand-in bus, no back-end)")


if __name__ == "__main__":
    main()
