"""What one DNS connection change and one resolver rewrite cost with many connections configured.

Run on demand (not a test; no root needed): ``python bench/bench_dns_connections.py
[--sizes 10,100,1000,10000] [--calls N]``.

Issue 13 target 4: ``SetConnection`` ≤ 2 ms median and a resolver rewrite ≤ 5 ms with 1,000
connections, about flat in N.  The daemon's DNS half (``DnsManager``) runs in-process on N
links (``eth1``..), each with one connection bound to it, loaded from a state file as at start;
no D-Bus and no kernel, so the figure is netpathd's own work plus its file writes.

* ``SetConnection``: ``set_connection()`` of one connection's ``ipv4.dns-priority``, persisted
  (the state file written atomically with fsync) and runtime-only;
* resolver rewrite: a new network state whose best default route moved to another link, so
  the order changes and the resolver file is rewritten (fsync'ed, as at every reorder);
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


def network(size: int, best: int) -> NetState:
    """``size`` links up, each with a default route; link ``best`` holds the lowest metric."""
    links = {i: Link(i, f"eth{i}", up=True) for i in range(1, size + 1)}
    routes = {DefaultRoute(Family.IPV4, i, metric=10 if i == best else 100 + i) for i in links}
    return NetState(links=links, default_routes=routes)


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


def measure(size: int, calls: int) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name:
        workdir = Path(name)
        for sub in ("config", "state"):
            (workdir / sub).mkdir()
        (workdir / "state" / "dns.conf").write_text(render_connections_file(connections(size)))
        dns = DnsManager(
            workdir / "config", workdir / "state", workdir / "resolv.conf", RcManager.FILE
        )
        dns.load()
        dns.update_network(network(size, best=1))
        persisted, runtime, rewrites, floor = [], [], [], []
        for call in range(calls):
            target = f"c{(call * 7919) % size + 1}"
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-priority": 50 + call % 2}, runtime=False)
            persisted.append(time.perf_counter() - started)
            started = time.perf_counter()
            dns.set_connection(target, {"ipv4.dns-priority": 60 + call % 2}, runtime=True)
            runtime.append(time.perf_counter() - started)
            moved = network(size, best=2 + call % 2)
            started = time.perf_counter()
            dns.update_network(moved)
            rewrites.append(time.perf_counter() - started)
            text = dns.resolv_conf.read_bytes()
            started = time.perf_counter()
            write_atomic(workdir / "floor", text)
            floor.append(time.perf_counter() - started)
    return median_ms(persisted), median_ms(runtime), median_ms(rewrites), median_ms(floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"medians in ms over {args.calls} calls; growth = against the first size")
    print(f"{'N':>6}{'Set persisted':>15}{'Set runtime':>13}{'rewrite':>10}{'fsync floor':>13}"
          f"{'growth (rewrite)':>18}")  # fmt: skip
    first_rewrite = 0.0
    for size in sizes:
        persisted, runtime, rewrite, floor = measure(size, args.calls)
        first_rewrite = first_rewrite or rewrite
        print(
            f"{size:>6}{persisted:>15.2f}{runtime:>13.2f}{rewrite:>10.2f}{floor:>13.2f}"
            f"{rewrite / first_rewrite:>17.1f}x"
        )
    print("targets at N=1000: Set ≤ 2 ms median, rewrite ≤ 5 ms median")


if __name__ == "__main__":
    main()
