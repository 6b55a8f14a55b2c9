"""What netpathd costs to start and to keep idle, against a bare dbus-fast service.

Run as root, on demand (not a test): ``python3 bench/bench_startup.py [--runs N] [--idle S]``.

Issue targets (13): READY=1 within 1.5x the bare service's, RSS at READY at most 25 MiB, no
wake-ups while idle.

Each run starts the daemon in a fresh network namespace on a private bus (exactly as
tests/support/daemon.py does) and takes the time from Popen to its sd_notify READY=1 and its
RSS right then (``ip netns exec`` execs, so Popen's pid is the daemon).  The reference, in the
same run and the same way (``ip netns exec``, same bus, same name, same policy), is a bare
``python3`` that imports asyncio and dbus_fast, connects, requests ``org.netpathd1`` and
sends READY=1 itself.  Runs alternate daemon / reference after one discarded warm-up each.
The last run of each then idles: after a 1 s settle, the context switches (voluntary +
involuntary, every thread) over ``--idle`` seconds are the wake-ups, and RSS is read again.
When the daemon misses the READY or RSS target (or with ``--importtime``) one more start
under ``python -X importtime`` shows which imports dominate, and a plain python3 importing
in stages (asyncio, dbus_fast, the rest of the daemon's modules) shows their RSS.

netpathd starts without OpenSSL (``app.main`` keeps ``ssl`` and ``_hashlib`` out), which the
bare service loads through asyncio and hashlib.  So a second reference, the same bare service
with OpenSSL kept out the same way, runs interleaved too: against it, the ratio is what
netpathd's own code costs; the difference between the two ratios is what OpenSSL accounts for.
The RSS stages leave OpenSSL out as the daemon does.

netpathd runs from byte-compiled modules, as its packages install it (py3compile, the RPM's
brp-python-bytecompile): with ``PYTHONDONTWRITEBYTECODE`` set, as it is in some shells, every
start compiled all 70 of its modules from source again (about 50 ms here), which the reference,
importing only the already compiled stdlib and dbus-fast, never pays.  So the bench compiles
them first, into ``__pycache__`` beside the sources (ignored by git) as the packages do.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from tests.support.bus import PrivateBus, private_bus  # noqa: E402
from tests.support.daemon import daemon_env  # noqa: E402
from tests.support.netns import netns  # noqa: E402

from common import (  # noqa: E402
    Notified,
    context_switches,
    memory_kib,
    percentile,
    ratio,
    start_daemon,
    start_notified,
    table,
)

READY_TARGET_RATIO = 1.5  # of the bare service's READY in the same run
RSS_TARGET_MIB = 25.0
SETTLE_S = 1.0

REFERENCE = """
import asyncio, os, socket, sys
from dbus_fast.aio import MessageBus
from dbus_fast import RequestNameReply

async def main():
    bus = await MessageBus(bus_address=sys.argv[1]).connect()
    reply = await bus.request_name("org.netpathd1")
    assert reply is RequestNameReply.PRIMARY_OWNER, reply
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ready.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    await asyncio.Event().wait()

asyncio.run(main())
"""
WITHOUT_OPENSSL = "import sys\nsys.modules['ssl'] = sys.modules['_hashlib'] = None\n"


class Sample:
    def __init__(self) -> None:
        self.ready_ms: list[float] = []
        self.rss_ready_kib: list[int] = []
        self.rss_idle_kib = 0
        self.wakeups_per_s = 0.0
        self.phases: dict[str, list[float]] = defaultdict(list)

    def add_phases(self, messages: list[tuple[int, str]]) -> None:
        """Milliseconds between the daemon's successive sd_notify messages, by phase."""
        previous, label = 0, "exec, imports, configuration"
        for at, text in messages:
            self.phases[label].append((at - previous) / 1e6)
            status = [line for line in text.splitlines() if line.startswith("STATUS=")]
            previous, label = at, status[0].removeprefix("STATUS=") if status else text


def measure(proc: Notified, sample: Sample, idle: float | None) -> None:
    try:
        sample.ready_ms.append(proc.wait_ready() / 1e6)
        sample.add_phases(proc.messages)
        sample.rss_ready_kib.append(memory_kib(proc.pid))
        if idle is not None:
            time.sleep(SETTLE_S)
            before = context_switches(proc.pid)
            time.sleep(idle)
            sample.wakeups_per_s = (context_switches(proc.pid) - before) / idle
            sample.rss_idle_kib = memory_kib(proc.pid)
    finally:
        proc.stop()


def run_daemon(bus: PrivateBus, tmp: Path, sample: Sample, idle: float | None) -> None:
    with netns("nps") as ns:
        workdir = Path(tempfile.mkdtemp(dir=tmp))
        measure(start_daemon(ns, bus, workdir), sample, idle)


def run_reference(
    bus: PrivateBus, tmp: Path, sample: Sample, idle: float | None, *, openssl: bool = True
) -> None:
    with netns("npr") as ns:
        workdir = Path(tempfile.mkdtemp(dir=tmp))
        script = REFERENCE if openssl else WITHOUT_OPENSSL + REFERENCE
        argv = ns.exec_argv(sys.executable, "-c", script, bus.address)
        measure(start_notified(argv, daemon_env(), workdir), sample, idle)


def importtime(bus: PrivateBus, tmp: Path, top: int) -> None:
    """One more start under -X importtime: where the import time goes, by package."""
    with netns("npi") as ns:
        workdir = Path(tempfile.mkdtemp(dir=tmp))
        proc = start_daemon(ns, bus, workdir, python_flags=("-X", "importtime"))
        try:
            ready_ms = proc.wait_ready() / 1e6
        finally:
            proc.stop()
        lines = proc.stderr_path.read_text().splitlines()
    by_package: dict[str, int] = defaultdict(int)
    cumulative: list[tuple[int, str]] = []
    own_times: list[tuple[int, str]] = []
    for line in lines:
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, total, name = line.removeprefix("import time:").split("|")
        by_package[name.strip().split(".")[0]] += int(own)
        cumulative.append((int(total), name.rstrip()))
        own_times.append((int(own), name.strip()))
    spent = sum(by_package.values())
    print(
        f"\n-X importtime: READY after {ready_ms:.0f} ms (slowed by the tracing), "
        f"{spent / 1000:.0f} ms in imports"
    )
    rows = [
        (package, f"{own / 1000:.1f}", f"{100 * own / spent:.0f}%")
        for package, own in sorted(by_package.items(), key=lambda item: -item[1])[:top]
    ]
    table("import time by top-level package (self time summed)", ("package", "ms", "share"), rows)
    rows = [(name, f"{total / 1000:.1f}") for total, name in sorted(cumulative)[::-1][:top]]
    table("\nslowest imports, cumulative (indent = nesting)", ("import", "ms"), rows)
    rows = [(name, f"{own / 1000:.1f}") for own, name in sorted(own_times)[::-1][:top]]
    table("\nslowest single modules, self time", ("module", "ms"), rows)
    rss_by_import([name.strip() for _, name in cumulative])


RSS_STAGES = (
    WITHOUT_OPENSSL
    + """
import importlib, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
print("python3 (interpreter, site)", rss(), 0)
for stage in sys.argv[1:]:
    started = time.perf_counter()
    for name in stage.split(","):
        try:
            importlib.import_module(name)
        except Exception:  # a module that only imports inside the daemon's context
            pass
    print(stage.split(",")[0] + ("" if "," not in stage else " ..."), rss(),
          int((time.perf_counter() - started) * 1e6))
"""
)


def rss_by_import(modules: list[str]) -> None:
    """RSS after each stage of imports, the daemon's own module list last (no bus, no netns)."""
    # No stage of its own for pyroute2: "import pyroute2" runs its __init__, the whole library,
    # where the daemon loads the few modules it needs (netpathd/kernel/__init__.py).
    stages = ["asyncio", "dbus_fast.aio,dbus_fast.service", ",".join(modules)]
    print("\n(without OpenSSL, as netpathd starts)")
    result = subprocess.run(
        [sys.executable, "-c", RSS_STAGES, *stages],
        check=True,
        capture_output=True,
        text=True,
        env=daemon_env(),
    )
    rows, previous = [], 0
    for line in result.stdout.splitlines():
        name, kib, usec = line.rsplit(" ", 2)
        rows.append((name, f"{int(kib) / 1024:.1f}", f"+{(int(kib) - previous) / 1024:.1f}",
                     f"{int(usec) / 1000:.0f}"))  # fmt: skip
        previous = int(kib)
    rows[-1] = ("every other module netpathd imports by READY", *rows[-1][1:])
    table("RSS by import stage, cumulative", ("stage", "MiB", "added", "ms"), rows)


def byte_compile() -> None:
    """The daemon's modules compiled where every start below looks for them first."""
    if not compileall.compile_dir(ROOT / "daemon" / "netpathd", quiet=1):
        raise SystemExit("byte-compiling daemon/netpathd failed")


def bench(runs: int, idle: float, force_importtime: bool, top: int) -> None:
    daemon, reference, warmup = Sample(), Sample(), Sample()
    lean = Sample()  # the reference without OpenSSL
    with private_bus() as bus, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        byte_compile()
        run_daemon(bus, tmp, warmup, None)
        run_reference(bus, tmp, warmup, None)
        run_reference(bus, tmp, warmup, None, openssl=False)
        for index in range(runs):
            last = index == runs - 1
            run_daemon(bus, tmp, daemon, idle if last else None)
            run_reference(bus, tmp, reference, idle if last else None)
            run_reference(bus, tmp, lean, idle if last else None, openssl=False)
        slow = statistics.median(daemon.ready_ms) > READY_TARGET_RATIO * statistics.median(
            reference.ready_ms
        )
        heavy = statistics.median(daemon.rss_ready_kib) / 1024 > RSS_TARGET_MIB
        if force_importtime or slow or heavy:
            importtime(bus, tmp, top)

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f}"

    def ms(value: float) -> str:
        return f"{value:.1f}"

    def per_s(value: float) -> str:
        return f"{value:.2f}"

    def ready(sample: Sample) -> float:
        return statistics.median(sample.ready_ms)

    def ready_p90(sample: Sample) -> float:
        return percentile(sample.ready_ms, 0.9)

    def rss(sample: Sample) -> float:
        return statistics.median(sample.rss_ready_kib)

    measures = [
        ("start -> READY=1, median (ms)", ready, ms, f"<= {READY_TARGET_RATIO}x"),
        ("start -> READY=1, p90 (ms)", ready_p90, ms, ""),
        ("RSS at READY, median (MiB)", rss, mib, f"<= {RSS_TARGET_MIB:.0f}"),
        (f"RSS after {SETTLE_S + idle:.0f} s idle (MiB)", lambda s: s.rss_idle_kib, mib, ""),
        (f"wake-ups/s over {idle:.0f} s idle", lambda s: s.wakeups_per_s, per_s, "0"),
    ]
    rows = []
    for label, value, text, target in measures:
        d, r, n = value(daemon), value(reference), value(lean)
        rows.append((label, text(d), text(r), ratio(d, r), target, text(n), ratio(d, n)))
    print(f"\nnetpathd vs bare dbus-fast service, {runs} runs each (+1 warm-up discarded)")
    headers = ("measure", "netpathd", "reference", "ratio", "target", "ref. w/o OpenSSL", "ratio")
    table("", headers, rows)
    print(
        "warm-up (discarded): netpathd "
        f"{warmup.ready_ms[0]:.1f} ms, reference {warmup.ready_ms[1]:.1f} ms, "
        f"without OpenSSL {warmup.ready_ms[2]:.1f} ms"
    )
    d_ready, r_ready, d_rss = ready(daemon), ready(reference), rss(daemon)
    phases = [
        (label, f"{statistics.median(values):.1f}")
        for label, values in daemon.phases.items()
        if len(values) == runs
    ]
    table(
        "\nnetpathd start-up by phase: ms until the next sd_notify message (median)",
        ("phase (the STATUS= that opened it)", "ms"),
        phases,
    )
    print("daemon READY ms per run: " + " ".join(f"{v:.0f}" for v in daemon.ready_ms))
    over = []
    if d_ready > READY_TARGET_RATIO * r_ready:
        over.append(
            f"READY median {d_ready:.0f} ms, {d_ready / r_ready:.2f}x the reference's "
            f"{r_ready:.0f} ms, target <= {READY_TARGET_RATIO}x"
        )
    if d_rss / 1024 > RSS_TARGET_MIB:
        over.append(f"RSS at READY {mib(d_rss)} MiB, target <= {RSS_TARGET_MIB:.0f} MiB")
    if daemon.wakeups_per_s > 0:
        over.append(f"{daemon.wakeups_per_s:.2f} wake-ups/s while idle > 0")
    print("over target: " + ("; ".join(over) if over else "nothing"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed starts of each (default 10)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, s (default 10)")
    parser.add_argument(
        "--importtime", action="store_true", help="show -X importtime even when on target"
    )
    parser.add_argument("--top", type=int, default=12, help="rows of the import tables")
    args = parser.parse_args()
    bench(args.runs, args.idle, args.importtime, args.top)


if __name__ == "__main__":
    main()
