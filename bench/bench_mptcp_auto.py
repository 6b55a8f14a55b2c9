"""How fast an automatic MPTCP endpoint follows a new address, against a direct netlink add.

Run as root, on demand (not a test): ``python bench/bench_mptcp_auto.py [--samples N]``.

One throw-away namespace, netpathd running in it with ``[auto]`` in its
mptcp.conf; "eth1" has a default route (so its addresses get endpoints),
"eth2" has none (so the daemon plans nothing for it).  A probe process inside
the namespace alternates two kinds of samples:

* **netpathd**: add 198.51.100.1/24 to eth1 over rtnetlink; from the kernel's
  ack, dump the endpoint table (MPTCP_PM_CMD_GET_ADDR) in a tight loop until
  the address is in it.  Then delete the address and wait, the same way, until
  netpathd has removed the endpoint (reported too).
* **floor**: add 203.0.113.1/24 to eth2; from the ack, send ADD_ADDR for it
  at once and wait for that ack: what any daemon needs at least, with no
  event to wait for and nothing to decide.  netpathd sees this address too and
  runs its round (for nothing) meanwhile, as it would on a real host.

The detector is a raw generic-netlink dump whose reply is only searched for the
address attribute, never decoded; its own period (one dump) is measured and
reported as the resolution, and half of it is the expected detection delay
included in the netpathd figures.  Medians and p99 over ``--samples``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from bench.common import percentile, table  # noqa: E402
from tests.support.bus import private_bus  # noqa: E402
from tests.support.daemon import running_daemon  # noqa: E402
from tests.support.netns import netns, veth  # noqa: E402

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

samples = int(sys.argv[1])
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

def present(needle):
    # One dump, searched for the ADDR4 attribute (len 8, type 3) without decoding.
    request(GET_ADDR, flags=NLM_F_REQUEST | NLM_F_DUMP)
    found = False
    while True:
        data = sock.recv(65536)
        if needle in data:
            found = True
        # a dump's last datagram ends with NLMSG_DONE
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return found
            offset += (length + 3) & ~3

def attr(address):
    return struct.pack("=HH", 8, 3) + socket.inet_aton(address)

ipr = IPRoute()
eth1, eth2 = ipr.link_lookup(ifname="eth1")[0], ipr.link_lookup(ifname="eth2")[0]
auto, direct = "198.51.100.1", "203.0.113.1"
needle_auto, needle_direct = attr(auto), attr(direct)
result = {"auto": [], "gone": [], "from_request": [], "floor": [], "floor_seen": [], "period": []}
for n in range(samples + 5):  # the first 5 warm up caches and imports
    sent = time.perf_counter()
    ipr.addr("add", index=eth1, address=auto, prefixlen=24)
    acked = time.perf_counter()
    polls = 0
    while not present(needle_auto):
        polls += 1
    seen = time.perf_counter()
    period_start = time.perf_counter()
    present(needle_auto)
    result["period"].append(time.perf_counter() - period_start)
    ipr.addr("del", index=eth1, address=auto, prefixlen=24)
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
    request(DEL_ADDR, nla(1 | NESTED, nla(2, struct.pack("B", 200))))
    wait_ack()
    ipr.addr("del", index=eth2, address=direct, prefixlen=24)
    if n >= 5:
        result["auto"].append(seen - acked)
        result["from_request"].append(seen - sent)
        result["gone"].append(gone - deleted)
        result["floor"].append(floor_acked - floor_start)
        result["floor_seen"].append(floor_seen - floor_start)
print(json.dumps(result))
"""


def ms(values: list[float], fraction: float | None = None) -> str:
    value = percentile(values, fraction) if fraction else percentile(values, 0.5)
    return f"{value * 1e3:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with netns("bench") as ns, netns("peer") as peer, private_bus() as bus:
        veth(ns, "eth1", peer, "eth1")
        veth(ns, "eth2", peer, "eth2")
        ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
        ns.ip("route", "add", "default", "via", "192.0.2.254", "dev", "eth1")
        workdir = Path(tempfile.mkdtemp(prefix="netpathd-bench-"))
        (workdir / "config").mkdir()
        (workdir / "config" / "mptcp.conf").write_text("[auto]\n")
        with running_daemon(ns, bus, workdir):
            done = ns.exec(sys.executable, "-c", PROBE, str(args.samples))
    result: dict[str, list[float]] = json.loads(done.stdout)
    rows = [
        ("netpathd: address ack -> endpoint in kernel", "auto"),
        ("netpathd: address request -> endpoint in kernel", "from_request"),
        ("netpathd: address deleted -> endpoint gone", "gone"),
        ("floor: direct ADD_ADDR request -> ack", "floor"),
        ("floor: direct ADD_ADDR request -> seen by detector", "floor_seen"),
        ("detector period (one GET_ADDR dump)", "period"),
    ]
    table(
        f"{args.samples} samples, one namespace, one run (ms)",
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


if __name__ == "__main__":
    main()
