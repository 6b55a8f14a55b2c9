"""Run netpathd as a real process inside a test namespace, on a private bus.

Readiness is the daemon's own ``READY=1`` over a private ``NOTIFY_SOCKET``,
exactly what systemd waits for, so tests never sleep.
"""

from __future__ import annotations

import os
import select
import signal
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
from tests.support.netns import Netns

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0


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

    def stop(self) -> str:
        """SIGTERM and reap; returns what the daemon wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


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
    process = subprocess.Popen(
        daemon_argv(ns, None if "NETPATHD_BUS_ADDRESS" in env else bus.address, workdir, *extra),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C in a terminal reaches only the test or sandbox
    )
    daemon = Daemon(process, workdir, notify)
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
