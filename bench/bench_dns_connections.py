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
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from netpathd.dns_manager import DnsManager  # noqa: E402
from netpathd.files.atomic import write_atomic  # noqa: E402
from netpathd.files.resolv_conf import RcManager  # noqa: E402
from netpathd.model.dns import DnsConnection, DnsFamilyConfig  # noqa: E402
from netpathd.model.dns_settings import DnsConfig, render_connections_file  # noqa: E402
from netpathd.model.links import DefaultRoute, Family, Link, NetState  # noqa: E402
from netpathd.model.netstate import RouteGone, RouteSeen, apply_all  # noqa: E402


def network(size: int, best: int) -> NetState:
    """``size`` links up, each with a default route; link ``best`` holds the lowest metric."""
    links = {i: Link(i, f"eth{i}", up=True) for i in range(1, size + 1)}
    routes = {DefaultRoute(Family.IPV4, i, metric=10 if i == best else 100 + i) for i in links}
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


def measure(size: int, calls: int, fresh: bool) -> tuple[float, ...]:
    with tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name:
        workdir = Path(name)
        for sub in ("config", "state"):
            (workdir / sub).mkdir()
        (workdir / "state" / "dns.conf").write_text(render_connections_file(connections(size)))
        dns = DnsManager(
            workdir / "config", workdir / "state", workdir / "resolv.conf", RcManager.FILE
        )
        dns.load()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--fresh-states", action="store_true", help="a new snapshot per rewrite")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"medians in ms over {args.calls} calls; growth = against the first size")
    print(f"{'N':>6}{'Set persisted':>15}{'Set runtime':>13}{'rewrite':>10}{'routed plan':>13}"
          f"{'fsync floor':>13}{'growth (Set, rewrite)':>23}")  # fmt: skip
    first: tuple[float, ...] = ()
    for size in sizes:
        persisted, runtime, rewrite, routed, floor = measure(size, args.calls, args.fresh_states)
        first = first or (persisted, rewrite)
        print(
            f"{size:>6}{persisted:>15.2f}{runtime:>13.2f}{rewrite:>10.2f}{routed:>13.2f}"
            f"{floor:>13.2f}{persisted / first[0]:>15.1f}x{rewrite / first[1]:>7.1f}x"
        )
    print("targets at N=1000: Set ≤ 2 ms median, rewrite ≤ 5 ms median")


if __name__ == "__main__":
    main()
