"""What one endpoint change costs through netpathd's D-Bus API, against running ``ip``.

Run as root, on demand (not a test):
``python bench/bench_mptcp_bus.py [--rounds N] [--state-dir DIR]``.  ``--state-dir``
picks the file system the persisted changes are fsync()ed on (default: under
``$TMPDIR``; ``/dev/shm`` for tmpfs); the runtime directory is always on tmpfs
(``/dev/shm``), as ``/run/netpathd`` is on a host.

In one throw-away namespace with netpathd on a private bus, each round adds an
endpoint and removes it again, measured three ways in the same run:

* ``AddEndpoint`` + ``RemoveEndpoint`` over D-Bus (a dbus-fast client, one
  connection): for the add the state file written atomically with fsync, then
  the kernel change (write-ahead), for the remove the other way round;
  PropertiesChanged emitted;
* ``AddEndpointRuntime`` + ``RemoveEndpoint``: the same with the applied record
  (atomic, no fsync, on tmpfs) instead of the persisted file;
* ``ip -n NS mptcp endpoint add`` / ``delete`` as processes: what a script or an
  admin following the guide runs, and the reference of the ratio;
* the same netlink requests, encoded once and sent on a plain socket from a process
  inside the namespace: the kernel floor.

The fsync floor of the state directory is measured in the same run: one durable
atomic replace of a file of the state file's size there (write, fsync, rename over
the file, fsync of the directory), which every persisted change costs before its
reply.  The file replaced exists, as the state file does: on ext4 a rename over a
file costs about 50 µs more than one onto a free name (measured here).

Read the floor before the ratio: DEL_ADDR waits for an RCU grace period
(``synchronize_rcu()`` in ``mptcp_pm_nl_del_addr_doit``, net/mptcp/pm_kernel.c),
and every change netpathd accepts is fsync()ed to disk before the reply
(``files/atomic.py``), while ``ip`` persists nothing.  When those dominate, no
interface can be several times faster than a process spawn.  Reading the table
(Get(Endpoints) against ``ip mptcp endpoint show``) is measured too.

Last, whether the deletes stall the daemon: a second client issues
``Get(Version)`` back to back while the first removes an endpoint 100 times
(adding it back between removes); the latencies of the Gets issued while a
``RemoveEndpoint`` was in flight are reported next to the same Gets against an
idle daemon in the same run (target: p99 ≤ 2 ms).

``--phases`` then runs the adds once more against a second daemon that times each
phase of them inside itself (``bench/mptcp_bus_phases.py``): where an add's time
goes, next to the round trip its client saw.  The clocks cost a few µs, so those
figures are never mixed with the ones above.
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from bench.common import percentile  # noqa: E402
from dbus_fast import Message, MessageType  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from tests.support import daemon as test_daemon  # noqa: E402
from tests.support.bus import PrivateBus, private_bus  # noqa: E402
from tests.support.daemon import running_daemon  # noqa: E402
from tests.support.netns import Netns, netns  # noqa: E402

ADDRESS = "192.0.2.77"
ENDPOINT_ID = 77


async def call(bus: MessageBus, member: str, signature: str, body: list[object]) -> list[object]:
    reply = await asyncio.wait_for(
        bus.call(
            Message(
                destination="org.netpathd1",
                path="/org/netpathd1",
                interface="org.netpathd1.Mptcp",
                member=member,
                signature=signature,
                body=body,
            )
        ),
        10,
    )
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
    return list(reply.body)


Samples = tuple[list[float], list[float]]  # seconds per add, seconds per remove
Op = Callable[[], Awaitable[object]]


async def time_rounds(
    rounds: int, add: Op, remove: Op, between: Callable[[], None] = lambda: None
) -> Samples:
    """Seconds per add and per remove; ``between`` runs untimed after every round."""
    await add()  # warm-up: imports, caches, first netlink family lookup
    await remove()
    adds, removes = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await add()
        added = time.perf_counter()
        await remove()
        adds.append(added - started)
        removes.append(time.perf_counter() - added)
        between()
    return adds, removes


async def bus_rounds(
    address: str, rounds: int, add_member: str, between: Callable[[], None] = lambda: None
) -> Samples:
    bus = await MessageBus(bus_address=address).connect()
    body: list[object] = [ADDRESS, ["subflow"], "", 0, ENDPOINT_ID]
    try:
        return await time_rounds(
            rounds,
            lambda: call(bus, add_member, "sassqu", body),
            lambda: call(bus, "RemoveEndpoint", "u", [ENDPOINT_ID]),
            between,
        )
    finally:
        bus.disconnect()


async def ip_rounds(ns: Netns, rounds: int) -> Samples:
    async def ip(*argv: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "ip", "-n", ns.name, "mptcp", "endpoint", *argv
        )
        assert await process.wait() == 0

    return await time_rounds(
        rounds,
        lambda: ip("add", ADDRESS, "id", str(ENDPOINT_ID), "subflow"),
        lambda: ip("delete", "id", str(ENDPOINT_ID)),
    )


KERNEL_FLOOR = """
import asyncio, json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from netpathd.kernel import mptcp_codec, mptcp_pm
from netpathd.kernel.genl_transport import _frame
from netpathd.model.mptcp import Endpoint, EndpointFlag, parse_address

async def family():
    async with mptcp_pm.MptcpPm() as pm:
        return pm._family

def main(rounds, endpoint_id, address):
    family_id, flags = asyncio.run(family()), NLM_F_REQUEST | NLM_F_ACK
    subflow = frozenset({EndpointFlag.SUBFLOW})
    endpoint = Endpoint(endpoint_id, parse_address(address), flags=subflow)
    add = _frame(mptcp_codec.add_addr(endpoint, 0), family_id, flags, 1)
    delete = _frame(mptcp_codec.del_addr(endpoint_id), family_id, flags, 2)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
    sock.bind((0, 0))
    adds, removes = [], []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        sock.send(add)
        assert sock.recv(65536)[16:20] == bytes(4)  # the ack's error code: 0
        added = time.perf_counter()
        sock.send(delete)
        assert sock.recv(65536)[16:20] == bytes(4)
        adds.append(added - started)
        removes.append(time.perf_counter() - added)
    print(json.dumps([adds[1:], removes[1:]]))

main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
"""


def kernel_rounds(ns: Netns, rounds: int) -> Samples:
    """The bare netlink requests from a process in the namespace: what no interface can beat."""
    done = ns.exec(
        sys.executable, "-c", KERNEL_FLOOR, str(ROOT / "daemon"), str(rounds),
        str(ENDPOINT_ID), ADDRESS,
    )  # fmt: skip
    adds, removes = json.loads(done.stdout)
    return adds, removes


async def read_rounds(ns: Netns, address: str, rounds: int) -> tuple[list[float], list[float]]:
    """Reading the endpoint table: Get(Endpoints) against ``ip mptcp endpoint show``."""
    bus = await MessageBus(bus_address=address).connect()
    get = Message(
        destination="org.netpathd1",
        path="/org/netpathd1",
        interface="org.freedesktop.DBus.Properties",
        member="Get",
        signature="ss",
        body=["org.netpathd1.Mptcp", "Endpoints"],
    )

    async def show() -> None:
        process = await asyncio.create_subprocess_exec(
            "ip", "-n", ns.name, "mptcp", "endpoint", "show", stdout=asyncio.subprocess.DEVNULL
        )
        assert await process.wait() == 0

    try:
        return await time_rounds(rounds, lambda: bus.call(get), show)
    finally:
        bus.disconnect()


VERSION = Message(
    destination="org.netpathd1",
    path="/org/netpathd1",
    interface="org.freedesktop.DBus.Properties",
    member="Get",
    signature="ss",
    body=["org.netpathd1.Manager", "Version"],
)


async def get_version_latencies(
    bus: MessageBus, until: asyncio.Event, busy: list[bool]
) -> list[float]:
    """Seconds per Get(Version), back to back until ``until``; only those issued while busy[0]."""
    samples = []
    while not until.is_set():
        during = busy[0]
        started = time.perf_counter()
        await asyncio.wait_for(bus.call(VERSION), 10)
        if during:
            samples.append(time.perf_counter() - started)
    return samples


async def reads_during_deletes(address: str, deletes: int) -> tuple[list[float], list[float]]:
    """Get(Version) latencies against an idle daemon, then while ``deletes`` removes run."""
    writer = await MessageBus(bus_address=address).connect()
    reader = await MessageBus(bus_address=address).connect()
    body: list[object] = [ADDRESS, ["subflow"], "", 0, ENDPOINT_ID]
    try:
        done, busy = asyncio.Event(), [True]
        idle_reads = asyncio.create_task(get_version_latencies(reader, done, busy))
        await asyncio.sleep(1.0)
        done.set()
        idle = await idle_reads
        done, busy = asyncio.Event(), [False]
        reads = asyncio.create_task(get_version_latencies(reader, done, busy))
        for _ in range(deletes):
            await call(writer, "AddEndpointRuntime", "sassqu", body)
            busy[0] = True
            await call(writer, "RemoveEndpoint", "u", [ENDPOINT_ID])
            busy[0] = False
        done.set()
        return idle, await reads
    finally:
        writer.disconnect()
        reader.disconnect()


def us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


class FsyncFloor:
    """What ``write_atomic`` must do for every persisted change, timed in the state dir.

    One sample per round of the persisted D-Bus calls, between them, so that both see
    the same disk: a temporary file the size of the state file, fsync()ed, renamed
    over a target that exists (as the state file does), and the directory fsync()ed.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.replaces: list[float] = []  # seconds per durable atomic replace
        self.fsyncs: list[float] = []  # seconds per fsync of the file alone

    def sample(self) -> None:
        data = (self.state_dir / "mptcp.conf").read_bytes()
        target = self.state_dir / "fsync-floor.conf"
        temporary = self.state_dir / ".fsync-floor.conf.tmp"
        directory = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        if not target.exists():  # made durably first, so no sample pays for its creation
            with target.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.fsync(directory)
        try:
            started = time.perf_counter()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            synced = time.perf_counter()
            os.fsync(fd)
            self.fsyncs.append(time.perf_counter() - synced)
            os.close(fd)
            os.replace(temporary, target)
            os.fsync(directory)
            self.replaces.append(time.perf_counter() - started)
        finally:
            os.close(directory)


def file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (ext4, tmpfs), from /proc/self/mounts."""
    resolved = str(path.resolve())
    mounts = [line.split()[1:3] for line in Path("/proc/self/mounts").read_text().splitlines()]
    holding = [
        (mount_point, kind)
        for mount_point, kind in mounts
        if resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
    ]
    return max(holding, key=lambda mount: len(mount[0]))[1]


async def measure(ns: Netns, address: str, rounds: int, state_dir: Path) -> None:
    floor = FsyncFloor(state_dir)
    results = {
        "D-Bus AddEndpoint / RemoveEndpoint": await bus_rounds(
            address, rounds, "AddEndpoint", floor.sample
        ),
        "D-Bus AddEndpointRuntime / RemoveEndpoint": await bus_rounds(
            address, rounds, "AddEndpointRuntime"
        ),
        "ip mptcp endpoint add / delete": await ip_rounds(ns, rounds),
        "kernel floor (bare genetlink request)": kernel_rounds(ns, rounds),
    }
    replaces, fsyncs = floor.replaces, floor.fsyncs
    print(f"{rounds} rounds, one namespace, one run; medians in µs per operation")
    print(
        f"state dir {state_dir} ({file_system(state_dir)}): durable atomic replace "
        f"{us(replaces):.0f} µs (of which the file's fsync {us(fsyncs):.0f} µs): the fsync floor "
        "of a persisted change"
    )
    print(f"{'':<44}{'add':>9}{'delete':>9}{'round':>9}")
    for name, (adds, removes) in results.items():
        rounds_us = [a + r for a, r in zip(adds, removes, strict=True)]
        print(f"{name:<44}{us(adds):>9.0f}{us(removes):>9.0f}{us(rounds_us):>9.0f}")
    gets, shows = await read_rounds(ns, address, rounds)
    print(
        f"read the table: D-Bus Get(Endpoints) {us(gets):.0f} µs, ip mptcp endpoint show "
        f"{us(shows):.0f} µs: {us(shows) / us(gets):.1f}x"
    )
    idle, during = await reads_during_deletes(address, 100)
    print(
        f"Get(Version) while 100 RemoveEndpoint run ({len(during)} calls): median "
        f"{us(during):.0f} µs, p99 {percentile(during, 0.99) * 1e6:.0f} µs, max "
        f"{max(during) * 1e6:.0f} µs; idle daemon ({len(idle)} calls): median {us(idle):.0f} µs, "
        f"p99 {percentile(idle, 0.99) * 1e6:.0f} µs (target: p99 ≤ 2000 µs)"
    )
    floor_add = us(results["kernel floor (bare genetlink request)"][0])
    ip_add, ip_remove = (us(s) for s in results["ip mptcp endpoint add / delete"])
    # No "above the floor" for deletes: the kernel's RCU wait is nearly all of every one.
    for name in ("D-Bus AddEndpoint / RemoveEndpoint", "D-Bus AddEndpointRuntime / RemoveEndpoint"):
        bus_add, bus_remove = (us(s) for s in results[name])
        print(
            f"{name}: ip/D-Bus add {ip_add / bus_add:.1f}x, delete {ip_remove / bus_remove:.1f}x; "
            f"add above the kernel floor: ip/D-Bus "
            f"{(ip_add - floor_add) / (bus_add - floor_add):.1f}x"
        )
    persisted = us(results["D-Bus AddEndpoint / RemoveEndpoint"][0])
    print(
        f"AddEndpoint {persisted:.0f} µs = fsync floor {us(replaces):.0f} µs + netpathd's own "
        f"{persisted - us(replaces):.0f} µs"
    )


@contextmanager
def timing_phases(out: Path) -> Iterator[None]:
    """Daemons started in the body run under ``mptcp_bus_phases.py``, which writes ``out``."""
    argv = test_daemon.daemon_argv

    def phases_argv(ns: Netns, bus_address: str | None, workdir: Path, *extra: str) -> list[str]:
        command = argv(ns, bus_address, workdir, *extra)
        module = command.index("-m")  # "-m netpathd": the launcher runs app.main() itself
        launcher = str(ROOT / "bench" / "mptcp_bus_phases.py")
        return [*command[:module], launcher, str(out), *command[module + 2 :]]

    test_daemon.daemon_argv = phases_argv
    try:
        yield
    finally:
        test_daemon.daemon_argv = argv


def phases(ns: Netns, bus: PrivateBus, rounds: int, state_parent: Path | None) -> None:
    """Where an add's time goes inside the daemon, per phase (medians); the same
    state and runtime file systems as the main measurement."""
    seen: dict[str, dict[str, float]] = {}  # member -> phase -> µs
    with (
        tempfile.TemporaryDirectory(prefix="netpathd-bench-", dir=state_parent) as work,
        tempfile.TemporaryDirectory(prefix="netpathd-bench-run-", dir="/dev/shm") as runtime,
    ):
        workdir = Path(work)
        for member in ("AddEndpointRuntime", "AddEndpoint"):
            out = workdir / f"{member}.json"
            (workdir / member).mkdir()
            run = f"--runtime-dir={runtime}/{member}"
            with timing_phases(out), running_daemon(ns, bus, workdir / member, run):
                adds, _ = asyncio.run(bus_rounds(bus.address, rounds, member))
            seen[member] = {"0 client's round trip": us(adds), **json.loads(out.read_text())}
    print(f"inside the daemon, per add (medians in µs, {rounds} rounds, clocks on):")
    print(f"{'':<44}{'runtime':>9}{'persisted':>10}")
    columns = seen["AddEndpointRuntime"], seen["AddEndpoint"]
    for phase in sorted(columns[0].keys() | columns[1].keys()):
        row = (f"{column.get(phase, float('nan')):.0f}" for column in columns)
        print(f"{phase[2:]:<44}{next(row):>9}{next(row):>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--phases", action="store_true", help="then time each phase of an add in the daemon"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where the daemon's state directory is made (default: under $TMPDIR)",
    )
    args = parser.parse_args()
    with (
        netns("bench") as ns,
        private_bus() as bus,
        tempfile.TemporaryDirectory(prefix="netpathd-bench-", dir=args.state_dir) as work,
        tempfile.TemporaryDirectory(prefix="netpathd-bench-run-", dir="/dev/shm") as runtime,
    ):
        workdir, runtime_dir = Path(work), Path(runtime)
        with running_daemon(ns, bus, workdir, f"--runtime-dir={runtime_dir}") as daemon:
            asyncio.run(measure(ns, bus.address, args.rounds, daemon.state_dir))
        if args.phases:
            phases(ns, bus, args.rounds, args.state_dir)


if __name__ == "__main__":
    main()
