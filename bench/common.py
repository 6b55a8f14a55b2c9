"""Helpers shared by bench_startup.py and bench_dns.py: /proc readings, the daemon, tables.

Not a benchmark itself.  The scripts put the repository and ``daemon/`` on ``sys.path``
before importing it.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.bus import PrivateBus
from tests.support.daemon import daemon_argv, daemon_env
from tests.support.netns import Netns

TICKS = os.sysconf("SC_CLK_TCK")


CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def entered(ns: Netns) -> Iterator[None]:
    """This thread inside ``ns`` for the body, e.g. to create a socket that lives there."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except FileNotFoundError:  # the thread ended between listing and reading
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without importing math
    return ordered[int(rank) - 1]


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference else "n/a"


def table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print(title)
    for row in [headers, *rows]:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))


@dataclass
class Notified:
    """A process started with a private NOTIFY_SOCKET; stderr goes to a file, never a pipe.

    A pipe nobody drains would block a daemon that logs every resolver write.
    """

    process: subprocess.Popen[bytes]
    notify: socket.socket
    started_ns: int
    stderr_path: Path
    messages: list[tuple[int, str]] = field(default_factory=list)  # (ns since start, text)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> int:
        """Nanoseconds from Popen to READY=1; raises with stderr when it never comes."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.notify], [], [], max(min(remaining, 0.1), 0))
            if readable:
                received = time.monotonic_ns() - self.started_ns
                text = self.notify.recv(4096).decode()
                self.messages.append((received, text))
                if "READY=1" in text.splitlines():
                    return received
            elif self.process.poll() is not None or remaining <= 0:
                self.stop()
                raise RuntimeError(f"no READY=1; stderr:\n{self.stderr_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.notify.close()


def start_notified(argv: list[str], env: dict[str, str], workdir: Path) -> Notified:
    notify_path = tempfile.mktemp(prefix="notify-", dir=workdir)  # noqa: S306
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    env = {**env, "NOTIFY_SOCKET": notify_path}
    stderr_path = Path(tempfile.mktemp(prefix="stderr-", dir=workdir))  # noqa: S306
    with stderr_path.open("wb") as stderr:
        started = time.monotonic_ns()
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    return Notified(process, notify, started, stderr_path)


def start_daemon(
    ns: Netns, bus: PrivateBus, workdir: Path, *extra: str, python_flags: tuple[str, ...] = ()
) -> Notified:
    """netpathd exactly as tests/support/daemon.py starts it, READY=1 not yet awaited."""
    for sub in ("config", "state"):
        (workdir / sub).mkdir(exist_ok=True)
    argv = daemon_argv(ns, bus.address, workdir, *extra)
    if python_flags:
        at = argv.index(sys.executable) + 1
        argv[at:at] = list(python_flags)
    return start_notified(argv, daemon_env(), workdir)
