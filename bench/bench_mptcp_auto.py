"""How fast an automatic MPTCP endpoint follows a new address, against a direct netlink add.

Run as root, on demand (not a test):
``python bench/bench_mptcp_auto.py [--samples N] [--burst N] [--tree DIR]``; ``--tree``
runs another checkout's daemon (e.g. main's) with this same probe, for before/after.

One throw-away namespace, netpathd running in it with ``[auto]`` in its
mptcp.conf; "eth1" has a default route (so its addresses get endpoints),
"eth2" has none (so the daemon plans nothing for it).  A probe process inside
the namespace alternates two kinds of samples:

* **netpathd**: add 198.51.100.1/24 to eth1 with one raw RTM_NEWADDR; from the
  kernel's ack (read on the raw socket, so no library time sits between the
  kernel and the clock), dump the endpoint table (MPTCP_PM_CMD_GET_ADDR) in a tight loop until
  the address is in it.  Then delete the address and wait, the same way, until
  netpathd has removed the endpoint (reported too).
* **floor**: add 203.0.113.1/24 to eth2; from the ack, send ADD_ADDR for it
  at once and wait for that ack: what any daemon needs at least, with no
  event to wait for and nothing to decide.  netpathd sees this address too and
  runs its round (for nothing) meanwhile, as it would on a real host.  The
  direct DEL_ADDR is timed too: the kernel holds it for an RCU grace period
  (``synchronize_rcu()``), the floor of any endpoint removal.

Then a **burst**: ``--burst`` addresses in one netlink write, with ``strace``
on the daemon counting its rounds (each reads ``net.mptcp.enabled`` once) and
its mptcp_pm requests by command, from the write until the last endpoint is in
the kernel and 0.2 s after (so a trailing round is counted too).

The detector is a raw generic-netlink dump whose reply is only searched for the
address attribute, never decoded; its own period (one dump) is measured and
reported as the resolution, and half of it is the expected detection delay
included in the netpathd figures.  Medians and p99 over ``--samples``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else ROOT
sys.path[:0] = [str(TREE), str(TREE / "daemon")]

from bench.common import percentile, table  # noqa: E402
from tests.support.bus import private_bus  # noqa: E402
from tests.support.daemon import running_daemon  # noqa: E402
from tests.support.netns import Netns, netns, veth  # noqa: E402

PROBE = r"""
import json, socket, struct, sys, time
from pyroute2 import IPRoute
from pyroute2.netlink.generic import GenericNetlinkSocket
from pyroute2.netlink.generic.mptcp import mptcp_msg

NETLINK_GENERIC = 16
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
GET_ADDR, ADD_ADDR, DEL_ADDR = 3, 1, 2
NESTED = 0x8000

samples, burst = int(sys.argv[1]), int(sys.argv[2])
resolver = GenericNetlinkSocket()
resolver.bind("mptcp_pm", mptcp_msg)
family = resolver.prid
resolver.close()
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
sock.bind((0, 0))
seq = 0

def request(cmd, attrs=b"", flags=NLM_F_REQUEST | NLM_F_ACK):
    global seq
    seq += 1
    body = struct.pack("BBH", cmd, 1, 0) + attrs
    sock.send(struct.pack("=IHHII", 16 + len(body), family, flags, seq, 0) + body)

def wait_ack():
    while True:
        data = sock.recv(65536)
        length, kind = struct.unpack_from("=IH", data)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, 16)
            if error:
                raise OSError(-error, "netlink")
            return

def nla(kind, payload):
    pad = (-len(payload)) % 4
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * pad

def endpoint_attrs(address, ifindex, endpoint_id):
    inner = nla(1, struct.pack("=H", socket.AF_INET)) + nla(3, socket.inet_aton(address))
    inner += nla(2, struct.pack("B", endpoint_id)) + nla(6, struct.pack("=I", 2))
    inner += nla(7, struct.pack("=i", ifindex))
    return nla(1 | NESTED, inner)

def dump():
    # The raw answer of one GET_ADDR dump, searched by the callers without decoding.
    request(GET_ADDR, flags=NLM_F_REQUEST | NLM_F_DUMP)
    chunks = []
    while True:
        data = sock.recv(65536)
        chunks.append(data)
        # a dump's last datagram ends with NLMSG_DONE
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return b"".join(chunks)
            offset += (length + 3) & ~3

def present(needle):
    # the ADDR4 attribute (len 8, type 3)
    return needle in dump()

def attr(address):
    return struct.pack("=HH", 8, 3) + socket.inet_aton(address)

RTM_NEWADDR, RTM_DELADDR, NLM_F_CREATE, NLM_F_EXCL = 20, 21, 0x400, 0x200
rtnl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
rtnl.bind((0, 0))

def address_message(kind, index, address, number):
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if kind == RTM_NEWADDR else 0)
    raw = socket.inet_aton(address)
    body = struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, index) + nla(2, raw) + nla(1, raw)
    return struct.pack("=IHHII", 16 + len(body), kind, flags, number, 0) + body

def change_addresses(kind, index, addresses):
    # one write for all: the kernel handles the messages in a row, then acks each
    rtnl.send(b"".join(address_message(kind, index, a, n) for n, a in enumerate(addresses, 1)))
    acked = 0
    while acked < len(addresses):
        data = rtnl.recv(65536)
        offset = 0
        while offset < len(data):
            length, kind_, _, _, _ = struct.unpack_from("=IHHII", data, offset)
            if kind_ == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, offset + 16)
                if error:
                    raise OSError(-error, "rtnetlink")
                acked += 1
            offset += (length + 3) & ~3

ipr = IPRoute()
eth1, eth2 = ipr.link_lookup(ifname="eth1")[0], ipr.link_lookup(ifname="eth2")[0]
if burst:
    addresses = [f"198.51.100.{10 + n}" for n in range(burst)]
    needles = [attr(a) for a in addresses]
    start = time.perf_counter()
    change_addresses(RTM_NEWADDR, eth1, addresses)
    while not all(needle in table for table in [dump()] for needle in needles):
        pass
    print(json.dumps({"burst_all_in": time.perf_counter() - start}))
    time.sleep(0.2)
    sys.exit(0)
auto, direct = "198.51.100.1", "203.0.113.1"
needle_auto, needle_direct = attr(auto), attr(direct)
result = {
    "auto": [], "gone": [], "from_request": [], "floor": [], "floor_seen": [], "floor_del": [],
    "period": [],
}
for n in range(samples + 5):  # the first 5 warm up caches and imports
    sent = time.perf_counter()
    change_addresses(RTM_NEWADDR, eth1, [auto])
    acked = time.perf_counter()
    polls = 0
    while not present(needle_auto):
        polls += 1
    seen = time.perf_counter()
    period_start = time.perf_counter()
    present(needle_auto)
    result["period"].append(time.perf_counter() - period_start)
    change_addresses(RTM_DELADDR, eth1, [auto])
    deleted = time.perf_counter()
    while present(needle_auto):
        pass
    gone = time.perf_counter()

    ipr.addr("add", index=eth2, address=direct, prefixlen=24)
    floor_start = time.perf_counter()
    request(ADD_ADDR, endpoint_attrs(direct, eth2, 200))
    wait_ack()
    floor_acked = time.perf_counter()
    while not present(needle_direct):
        pass
    floor_seen = time.perf_counter()
    floor_del = time.perf_counter()
    request(DEL_ADDR, nla(1 | NESTED, nla(2, struct.pack("B", 200))))
    wait_ack()
    floor_deleted = time.perf_counter()
    ipr.addr("del", index=eth2, address=direct, prefixlen=24)
    if n >= 5:
        result["auto"].append(seen - acked)
        result["from_request"].append(seen - sent)
        result["gone"].append(gone - deleted)
        result["floor"].append(floor_acked - floor_start)
        result["floor_seen"].append(floor_seen - floor_start)
        result["floor_del"].append(floor_deleted - floor_del)
print(json.dumps(result))
"""


def ms(values: list[float], fraction: float | None = None) -> str:
    value = percentile(values, fraction) if fraction else percentile(values, 0.5)
    return f"{value * 1e3:.3f}"


COMMANDS = {1: "ADD_ADDR", 2: "DEL_ADDR", 3: "GET_ADDR", 5: "SET_LIMITS", 6: "GET_LIMITS"}
# strace cannot name a generic netlink family from outside the namespace (nlmsg_type=0x1c);
# the daemon's only netlink writes after start are mptcp_pm requests, cmd first in the body
GENL_SEND = re.compile(
    r'sendto\(\d+<NETLINK:[^>]*>, \[\{nlmsg_len=\d+, nlmsg_type=0x[^}]*\}, "\\x([0-9a-f]{2})'
)


def traced_burst(ns: Netns, pid: int, size: int, trace: Path) -> tuple[float, int, dict[str, int]]:
    """The burst probe with strace on the daemon: (seconds until all in, rounds, requests)."""
    argv = ["strace", "-f", "-yy", "-s", "8", "-e", "trace=sendto,openat", "-o", str(trace)]
    tracer = subprocess.Popen(
        [*argv, "-p", str(pid)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    tracer.stderr.readline()  # "strace: Process N attached": tracing from here on
    try:
        done = ns.exec(sys.executable, "-c", PROBE, "0", str(size))
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
    lines = trace.read_text().splitlines()
    rounds = sum(1 for line in lines if "net/mptcp/enabled" in line)
    requests = collections.Counter(
        COMMANDS.get(int(match.group(1), 16), match.group(1))
        for line in lines
        if (match := GENL_SEND.search(line))
    )
    return json.loads(done.stdout)["burst_all_in"], rounds, dict(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--burst", type=int, default=6, help="addresses in one write (<= 7)")
    parser.add_argument("--tree", type=Path, help="a checkout whose daemon to run (default: this)")
    args = parser.parse_args()
    with netns("bench") as ns, netns("peer") as peer, private_bus() as bus:
        veth(ns, "eth1", peer, "eth1")
        veth(ns, "eth2", peer, "eth2")
        ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
        ns.ip("route", "add", "default", "via", "192.0.2.254", "dev", "eth1")
        with tempfile.TemporaryDirectory(prefix="netpathd-bench-") as name:
            workdir = Path(name)
            (workdir / "config").mkdir()
            (workdir / "config" / "mptcp.conf").write_text("[auto]\n")
            with running_daemon(ns, bus, workdir) as daemon:
                done = ns.exec(sys.executable, "-c", PROBE, str(args.samples), "0")
                burst = traced_burst(ns, daemon.process.pid, args.burst, workdir / "strace.txt")
    result: dict[str, list[float]] = json.loads(done.stdout)
    rows = [
        ("netpathd: address ack -> endpoint in kernel", "auto"),
        ("netpathd: address request -> endpoint in kernel", "from_request"),
        ("netpathd: address deleted -> endpoint gone", "gone"),
        ("floor: direct ADD_ADDR request -> ack", "floor"),
        ("floor: direct ADD_ADDR request -> seen by detector", "floor_seen"),
        ("floor: direct DEL_ADDR request -> ack (RCU grace period)", "floor_del"),
        ("detector period (one GET_ADDR dump)", "period"),
    ]
    table(
        f"{args.samples} samples, one namespace, one run (ms), daemon from {TREE}",
        ("", "median", "p99"),
        [(name, ms(result[key]), ms(result[key], 0.99)) for name, key in rows],
    )
    half = percentile(result["period"], 0.5) / 2
    auto = percentile(result["auto"], 0.5)
    print(
        f"netpathd median minus the detector's expected delay (half a period): "
        f"{(auto - half) * 1e3:.3f} ms; above the direct-add floor: "
        f"{(auto - half - percentile(result['floor'], 0.5)) * 1e3:.3f} ms"
    )
    seconds, rounds, requests = burst
    print(
        f"burst: {args.burst} addresses in one write -> {rounds} round(s), mptcp_pm requests "
        f"{' '.join(f'{k}={v}' for k, v in sorted(requests.items()))}; all in the kernel "
        f"{seconds * 1e3:.3f} ms after the write (under strace, which slows the daemon)"
    )


if __name__ == "__main__":
    main()
