"""Run netpathd as a real process inside a test namespace, on a private bus.

Readiness is the daemon's own ``READY=1`` over a private ``NOTIFY_SOCKET``,
exactly what systemd waits for, so tests never sleep.

Its stderr goes to a file in the workdir, never to a pipe read only at stop: a daemon
that logs a lot cannot block on a full pipe, and the log outlives a test that was
interrupted or hung.  This module is also a pytest plugin (tests/conftest.py) that adds
the logs of the processes a failing test started to its report, and prints them when
a run is interrupted (SIGINT: ``timeout -s INT``).
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.bus import PrivateBus
from tests.support.netns import Netns

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0

_logs: list[tuple[str, Path]] = []  # (what, file) started by the running test


def log_file(directory: Path, stem: str) -> IO[str]:
    """A new ``STEM.N.stderr`` in ``directory``, kept for the running test's report."""
    numbers = itertools.count(1)
    while (path := directory / f"{stem}.{next(numbers)}.stderr").exists():
        pass
    _logs.append((stem, path))
    return path.open("x")


@pytest.hookimpl(tryfirst=True)  # before the fixtures start anything
def pytest_runtest_setup(item: pytest.Item) -> None:
    _logs.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        for title, path in _logs:
            report.sections.append((f"{title} stderr ({path})", _read(path)))
        _logs.clear()  # once per test, on the phase that failed first


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    terminal = sys.__stderr__
    if terminal is None:
        return
    for title, path in _logs:
        terminal.write(f"\n----- {title} stderr ({path}) -----\n{_read(path)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as error:
        return f"(unreadable: {error})"


def daemon_argv(ns: Netns, bus_address: str | None, workdir: Path, *extra: str) -> list[str]:
    """The daemon's command line; ``bus_address`` None leaves the address to the environment."""
    address = [] if bus_address is None else [f"--bus-address={bus_address}"]
    return ns.exec_argv(
        sys.executable,
        "-m",
        "netpathd",
        *address,
        f"--config-dir={workdir / 'config'}",
        f"--state-dir={workdir / 'state'}",
        f"--runtime-dir={workdir / 'run'}",
        f"--resolv-conf={workdir / 'resolv.conf'}",
        *extra,
    )


def daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "daemon")
    env.pop("NOTIFY_SOCKET", None)
    env.pop("NETPATHD_BUS_ADDRESS", None)  # a developer's shell must not redirect the tests
    return env


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    workdir: Path
    notify: socket.socket
    stderr_path: Path
    messages: list[str] = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.workdir / "config"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def runtime_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def resolv_conf(self) -> Path:
        return self.workdir / "resolv.conf"

    def wait_notify(self, wanted: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait for an sd_notify assignment such as ``READY=1``; fail fast if the daemon dies."""
        deadline = time.monotonic() + timeout
        while not any(wanted in message.splitlines() for message in self.messages):
            exited = self.process.poll() is not None
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.notify], [], [], min(max(remaining, 0), 0.1))
            if readable:
                self.messages.append(self.notify.recv(4096).decode())
            elif exited or remaining <= 0:
                stderr = self.stop()
                why = "the daemon exited" if exited else f"nothing within {timeout}s"
                raise AssertionError(f"no {wanted}: {why}; stderr:\n{stderr}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        return _read(self.stderr_path)

    def stop(self) -> str:
        """SIGTERM and reap; returns what the daemon wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.stderr()


def start_daemon(
    ns: Netns,
    bus: PrivateBus,
    workdir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Daemon:
    """Start netpathd and wait for READY=1 (raises with its stderr if it never comes)."""
    for sub in ("config", "state"):
        (workdir / sub).mkdir(exist_ok=True)
    notify_path = tempfile.mktemp(prefix="netpathd-notify-", dir=workdir)  # noqa: S306
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    env = {**daemon_env(), **(env or {}), "NOTIFY_SOCKET": notify_path}
    with log_file(workdir, "netpathd") as stderr:
        process = subprocess.Popen(
            daemon_argv(
                ns, None if "NETPATHD_BUS_ADDRESS" in env else bus.address, workdir, *extra
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            start_new_session=True,  # Ctrl-C in a terminal reaches only the test or sandbox
        )
    daemon = Daemon(process, workdir, notify, Path(stderr.name))
    daemon.wait_notify("READY=1", ready_timeout)
    return daemon


@contextmanager
def running_daemon(
    ns: Netns, bus: PrivateBus, workdir: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Daemon]:
    daemon = start_daemon(ns, bus, workdir, *extra, env=env)
    try:
        yield daemon
    finally:
        daemon.stop()
        daemon.notify.close()
