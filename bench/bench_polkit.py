"""What polkit authorization adds to a call, against the same call by root, in one run.

Run as root, on demand (not a test): ``python bench/bench_polkit.py [--calls N]``.

netpathd runs in a throw-away namespace on a private bus with the real polkitd, set up
as the tests do (tests/support/polkit.py: a mount namespace with a test user and a
rules.d granting it ``org.netpathd1.dns.configure-runtime``). The call is
``SetConnectionRuntime`` with the same settings each time, so after the first call
nothing changes and nothing is written: what is left is dispatch and authorization.
Root is allowed after one question to the bus daemon (``GetConnectionUnixUser``);
the granted user additionally costs one ``CheckAuthorization`` round trip, in which
polkitd asks the bus about the caller and runs the JavaScript rules. Nothing is
cached, so every call pays it.

Measured, root and the user alternating so that drift hits both:

* latency: sequential calls, one in flight; median and p95 per caller, and the
  difference of the medians (the added latency of one authorized call);
* throughput: ``--calls`` calls (default 1,000) with ``--in-flight`` (default 32;
  the system bus allows 128 pending replies per client) outstanding; calls/s.

Clients are forked from this process and drop to the test user there: the
interpreter lives under /root, which other users cannot read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from dbus_fast import Message, MessageType, Variant  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from tests.support.daemon import running_daemon  # noqa: E402
from tests.support.netns import netns  # noqa: E402
from tests.support.polkit import (  # noqa: E402
    DNS_CONFIGURE_RUNTIME,
    GRANTED,
    TEST_USERS,
    Polkit,
    grant,
    polkit_bus,
    polkit_holder,
)

from common import percentile, ratio  # noqa: E402

SETTINGS = {
    "connection.interface-name": Variant("s", "tun0"),
    "connection.type": Variant("s", "vpn"),
    "ipv4.dns": Variant("as", ["198.51.100.53"]),
}


def request() -> Message:
    return Message(
        destination="org.netpathd1",
        path="/org/netpathd1",
        interface="org.netpathd1.Dns",
        member="SetConnectionRuntime",
        signature="sa{sv}",
        body=["vpn", SETTINGS],
    )


async def one(bus: MessageBus) -> None:
    reply = await asyncio.wait_for(bus.call(request()), 30)
    if reply.message_type is MessageType.ERROR:
        raise RuntimeError(f"{reply.error_name}: {reply.body}")


async def client(address: str, calls: int, in_flight: int) -> dict[str, Any]:
    bus = await MessageBus(bus_address=address).connect()
    try:
        await one(bus)  # warm-up
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            await one(bus)
            latencies.append(time.perf_counter() - started)
        gate = asyncio.Semaphore(in_flight)

        async def bounded() -> None:
            async with gate:
                await one(bus)

        started = time.perf_counter()
        await asyncio.gather(*(bounded() for _ in range(calls)))
        return {"latencies": latencies, "throughput": calls / (time.perf_counter() - started)}
    finally:
        bus.disconnect()


def run_as(uid: int, address: str, calls: int, in_flight: int) -> dict[str, Any]:
    """``client()`` in a forked child running as ``uid``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if uid:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            result = asyncio.run(client(address, calls, in_flight))
            os.write(write_end, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the client as uid {uid} failed")
    result: dict[str, Any] = json.loads(data)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per client and round")
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of root and user")
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_polkit.py: run as root (namespaces, polkitd, test users)")

    with (
        polkit_holder() as holder,
        polkit_bus(holder) as bus,
        netns("pkb") as ns,
        tempfile.TemporaryDirectory() as workdir,
    ):
        (holder.rules_dir / "50-test.rules").write_text(grant(DNS_CONFIGURE_RUNTIME, GRANTED))
        polkit = Polkit(holder, bus)
        asyncio.run(polkit.start())
        try:
            with running_daemon(ns, bus, Path(workdir)):
                callers = {"root": 0, GRANTED: TEST_USERS[GRANTED]}
                results: dict[str, list[dict[str, Any]]] = {name: [] for name in callers}
                for _ in range(options.rounds):
                    for name, uid in callers.items():
                        results[name].append(
                            run_as(uid, bus.address, options.calls, options.in_flight)
                        )
        finally:
            polkit.stop()
    report(results, options)


def report(results: dict[str, list[dict[str, Any]]], options: argparse.Namespace) -> None:
    medians, rates = {}, {}
    print(
        f"SetConnectionRuntime, {options.calls} calls x {options.rounds} rounds per caller, "
        f"throughput with {options.in_flight} in flight"
    )
    print(f"{'caller':<24}{'median ms':>10}{'p95 ms':>10}{'calls/s (best)':>16}")
    for name, rounds in results.items():
        latencies = [value for result in rounds for value in result["latencies"]]
        medians[name] = statistics.median(latencies)
        rates[name] = max(result["throughput"] for result in rounds)
        label = "root (no polkit)" if name == "root" else f"{name} (polkit rule)"
        print(
            f"{label:<24}{medians[name] * 1e3:>10.3f}{percentile(latencies, 0.95) * 1e3:>10.3f}"
            f"{rates[name]:>16.0f}"
        )
    added = (medians[GRANTED] - medians["root"]) * 1e3
    print(f"added latency per authorized call: {added:.3f} ms (median against root)")
    print(f"latency ratio user/root: {ratio(medians[GRANTED], medians['root'])}")
    print(f"throughput ratio user/root: {ratio(rates[GRANTED], rates['root'])}")


if __name__ == "__main__":
    main()
