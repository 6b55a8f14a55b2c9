"""What `netpathctl run` costs: per socket() call, on the data path, and at start-up.

Run on demand as root: ``python3 bench/bench_mptcpize.py [--sockets N] [--gib G] [--runs R]``.
Everything happens on loopback inside a throw-away network namespace.  References are measured
in the same run and results are printed as ratios:

- socket(): one C binary creates and closes N sockets natively with IPPROTO_TCP and
  IPPROTO_MPTCP, then with IPPROTO_TCP under ``netpathctl run`` (each call trapped, answered
  by the supervisor with ADDFD) and under mptcpd's ``mptcpize run`` (LD_PRELOAD rewriting the
  protocol in-process) when that is installed (Debian package ``mptcpd``).  Also
  ``netpathctl run`` without SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (what kernels before 6.6
  get), and native MPTCP and ``netpathctl run`` with everything on one CPU (``taskset``):
  the synchronous wake-up covers the notification and the answer but not ADDFD's two
  wake-ups, which the scheduler sends to an idle CPU when there is one.
- transfer: G GiB over loopback from a natively created MPTCP socket vs one created by
  ``netpathctl run``; the supervisor is not on the data path, so this should be ~1.0.
- start-up: wall time of ``netpathctl run -- true`` (through ``netpathd.ctl.main``, as the
  installed command runs it) vs ``true``, and a bare ``python3 -c pass``: the interpreter's
  own start, which no Python CLI avoids.  Once from the sources and once from a byte-compiled
  copy of the package, as installed (with PYTHONDONTWRITEBYTECODE set, as on the development
  machines, every run from the sources compiles them again).
"""

from __future__ import annotations

import argparse
import compileall
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.netns import Netns, netns  # noqa: E402

PORT = 5201
TIMEOUT = 600

BENCH_C = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

int main(int argc, char **argv) {
    static char buf[1 << 20];
    if (argc == 4 && !strcmp(argv[1], "create")) {  /* create PROTO N */
        int proto = atoi(argv[2]), n = atoi(argv[3]), kind = 0;
        socklen_t len = sizeof kind;
        long long start = now_ns();
        for (int i = 0; i < n; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, proto);
            if (fd < 0) { perror("socket"); return 1; }
            if (i == 0) getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &kind, &len);
            close(fd);
        }
        printf("%d %lld\n", kind, now_ns() - start);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "sink")) {  /* sink PORT: one MPTCP connection */
        int one = 1, ls = socket(AF_INET, SOCK_STREAM, 262);
        struct sockaddr_in sa = loopback(atoi(argv[2]));
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1)) {
            perror("sink");
            return 1;
        }
        printf("ready\n");
        fflush(stdout);
        int c = accept(ls, NULL, NULL);
        long long total = 0;
        ssize_t got;
        while ((got = read(c, buf, sizeof buf)) > 0) total += got;
        dprintf(c, "%lld\n", total);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "send")) {  /* send PORT PROTO BYTES */
        int proto = atoi(argv[3]), kind = 0, fd = socket(AF_INET, SOCK_STREAM, proto);
        long long bytes = atoll(argv[4]), sent = 0;
        socklen_t len = sizeof kind;
        struct sockaddr_in sa = loopback(atoi(argv[2]));
        getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &kind, &len);
        long long start = now_ns();
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("connect"); return 1; }
        while (sent < bytes) {
            long long left = bytes - sent;
            ssize_t w = write(fd, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
            if (w <= 0) { perror("write"); return 1; }
            sent += w;
        }
        shutdown(fd, SHUT_WR);
        char ack[32] = {0};
        if (read(fd, ack, sizeof ack - 1) <= 0 || atoll(ack) != bytes) return 1;
        printf("%d %lld\n", kind, now_ns() - start);
        return 0;
    }
    fprintf(stderr, "usage: create PROTO N | sink PORT | send PORT PROTO BYTES\n");
    return 2;
}
"""


ONE_CPU = ("taskset", "-c", "0")
# The supervisor as on a kernel without SECCOMP_IOCTL_NOTIF_SET_FLAGS (before 6.6).
WITHOUT_SYNC_WAKE_UP = (
    "import sys; import netpathd.ctl.mptcpize as m; from netpathd.ctl.run import run; "
    "m._wake_up_on_this_cpu = lambda listener: None; raise SystemExit(run(sys.argv[1:]))"
)


def netpathctl_run(*command: str) -> list[str]:
    return [sys.executable, "-m", "netpathd.ctl.run", "--", *command]


def measure(ns: Netns, argv: list[str]) -> tuple[int, int]:
    """Run a bench command in `ns`; its (SO_PROTOCOL seen, nanoseconds) output line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    out = subprocess.run(
        ns.exec_argv(*argv), capture_output=True, text=True, env=env, timeout=TIMEOUT, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


def bench_sockets(ns: Netns, binary: str, n: int, runs: int) -> dict[str, float]:
    """Median µs per socket()+close() for each way of getting a socket."""
    tcp, mptcp = [binary, "create", "6", str(n)], [binary, "create", "262", str(n)]
    ways: dict[str, tuple[list[str], int]] = {
        "native TCP": (tcp, 6),
        "native MPTCP": (mptcp, 262),
        "netpathctl run": (netpathctl_run(*tcp), 262),
        "  no sync wake-up": ([sys.executable, "-c", WITHOUT_SYNC_WAKE_UP, "--", *tcp], 262),
        "native MPTCP, 1 CPU": ([*ONE_CPU, *mptcp], 262),
        "netpathctl run, 1 CPU": ([*ONE_CPU, *netpathctl_run(*tcp)], 262),
    }
    mptcpize = shutil.which("mptcpize")
    if mptcpize:
        ways["mptcpize run"] = ([mptcpize, "run", binary, "create", "6", str(n)], 262)
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):  # interleaved, so drift hits every way alike
        for name, (argv, expected) in ways.items():
            kind, nanoseconds = measure(ns, argv)
            assert kind == expected, f"{name}: SO_PROTOCOL {kind}, expected {expected}"
            samples[name].append(nanoseconds / n / 1000)
    if not mptcpize:
        print("mptcpize: not installed (apt-get install mptcpd), skipped")
    return {name: statistics.median(values) for name, values in samples.items()}


def transfer(ns: Netns, binary: str, argv: list[str], size: int) -> tuple[int, float]:
    sink = subprocess.Popen(ns.exec_argv(binary, "sink", str(PORT)), stdout=subprocess.PIPE)
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline() == b"ready\n"
        kind, nanoseconds = measure(ns, argv)
        sink.wait(TIMEOUT)
    finally:
        sink.kill()
        sink.wait(TIMEOUT)
    return kind, size / (nanoseconds / 1e9) / 2**30


def bench_transfer(ns: Netns, binary: str, size: int, runs: int) -> dict[str, float]:
    """Median GiB/s of one MPTCP connection over loopback, socket made natively or by us."""
    ways = {
        "native MPTCP": [binary, "send", str(PORT), "262", str(size)],
        "netpathctl run": netpathctl_run(binary, "send", str(PORT), "6", str(size)),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, argv in ways.items():
            kind, rate = transfer(ns, binary, argv, size)
            assert kind == 262, f"{name}: SO_PROTOCOL {kind}"
            samples[name].append(rate)
    return {name: statistics.median(values) for name, values in samples.items()}


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    """Milliseconds from start to exit of a command that must succeed.

    Awaits the exit on a pidfd: ``subprocess.run(timeout=...)`` polls with sleeps that double
    from 1 ms, which rounds every wall time up to the next 2**k - 1 ms (+ spawn): 3.5, 15.5,
    31.5, 63.5 ms, as earlier runs of this benchmark showed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    pidfd = os.pidfd_open(proc.pid)
    try:
        exited, _, _ = select.select([pidfd], [], [], TIMEOUT)
        elapsed = (time.perf_counter() - start) * 1000
    finally:
        os.close(pidfd)
    if not exited:
        proc.kill()
    assert proc.wait() == 0, f"{argv}: failed or timed out"
    return elapsed


def byte_compiled_copy(folder: Path) -> Path:
    """A copy of the package with its bytecode, as a package manager installs it."""
    shutil.copytree(ROOT / "daemon" / "netpathd", folder / "netpathd")
    assert compileall.compile_dir(folder, quiet=1)
    return folder


def bench_startup(ns: Netns, installed: Path, runs: int) -> dict[str, float]:
    """Median ms of wall time to run `true`, directly and under netpathctl run."""
    sources = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    compiled = {**os.environ, "PYTHONPATH": str(installed)}
    code = "from netpathd.ctl.main import main; raise SystemExit(main())"
    netpathctl = [sys.executable, "-c", code]
    ways = {
        "true": (["true"], sources),
        "python3 -c pass": ([sys.executable, "-c", "pass"], sources),
        "netpathctl run -- true": ([*netpathctl, "run", "--", "true"], sources),
        "  byte-compiled": ([*netpathctl, "run", "--", "true"], compiled),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, (argv, env) in ways.items():
            samples[name].append(wall_ms(ns.exec_argv(*argv), env))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=20_000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, netns("npb") as ns:
        source, binary = Path(tmp) / "bench.c", str(Path(tmp) / "bench")
        source.write_text(BENCH_C)
        subprocess.run(["gcc", "-O2", "-o", binary, str(source)], check=True, timeout=TIMEOUT)
        ns.sysctl("net.mptcp.enabled", "1")

        per_call = bench_sockets(ns, binary, args.sockets, args.runs)
        print(f"\nsocket()+close(), {args.sockets} calls, median of {args.runs} runs:")
        for name, micros in per_call.items():
            ratio = micros / per_call["native MPTCP"]
            print(f"  {name:21} {micros:8.2f} µs/call  {ratio:6.2f}x native MPTCP")
        added = per_call["netpathctl run"] - per_call["native MPTCP"]
        print(f"  netpathctl run adds {added:.2f} µs per socket() call")
        added = per_call["netpathctl run, 1 CPU"] - per_call["native MPTCP, 1 CPU"]
        print(f"  netpathctl run adds {added:.2f} µs per socket() call on one CPU")
        if "mptcpize run" in per_call:
            ratio = per_call["netpathctl run"] / per_call["mptcpize run"]
            print(f"  netpathctl run / mptcpize run: {ratio:.2f}x")

        size = int(args.gib * 2**30)
        rates = bench_transfer(ns, binary, size, args.runs)
        print(f"\ntransfer of {args.gib:g} GiB over loopback, median of {args.runs} runs:")
        for name, rate in rates.items():
            print(f"  {name:15} {rate:6.2f} GiB/s")
        ratio = rates["netpathctl run"] / rates["native MPTCP"]
        print(f"  netpathctl run / native MPTCP throughput: {ratio:.3f}")

        startup = bench_startup(ns, byte_compiled_copy(Path(tmp) / "installed"), args.runs)
        print(f"\nstart-up, median of {args.runs} runs:")
        for name, millis in startup.items():
            print(f"  {name:24} {millis:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
