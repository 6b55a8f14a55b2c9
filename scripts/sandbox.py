"""Run netpathd for real in a throw-away sandbox; Ctrl-C (or SIGTERM) tears it all down.

The sandbox is a private network namespace (with veth pairs inside it, so there are links,
addresses and a default route to look at), a private dbus-daemon configured like the system
bus with the project's own policy, and a temporary directory for netpathd's configuration,
state, resolver file and unit drop-ins.  Nothing in the host's network, /etc/resolv.conf,
/etc/systemd/system or system bus changes.

Only the standard library is used: the sandbox is what a new user runs, so it must not depend
on the test suite (tests/e2e/test_sandbox.py drives it instead).  The daemon's log goes to this
terminal or to the file given with --log-file, never into a pipe nobody reads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BUS_TEMPLATE = ROOT / "scripts" / "private-bus.conf.in"
POLICY = ROOT / "dbus" / "org.netpathd1.conf"
NETPATHCTL = ROOT / ".venv" / "bin" / "netpathctl"
READY_TIMEOUT = 60.0  # seconds; start-up takes well under one, but the machine may be loaded
STOP_TIMEOUT = 10.0
LOG_LEVELS = ("debug", "info", "warning", "error")
# dbus-daemon raises its descriptor limit to this as root (dbus-sysdeps-util-unix.c
# _dbus_rlimit_raise_fd_limit); without CAP_SYS_RESOURCE it cannot go past the hard limit.
DBUS_FD_LIMIT = 65536
CAP_SYS_RESOURCE = 24


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/sandbox",
        description="Run netpathd in a private network namespace on a private bus until Ctrl-C.",
    )
    parser.add_argument(
        "--log-file", type=Path, help="append netpathd's log to FILE (default: this terminal)"
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="debug", help="netpathd's log level"
    )
    return parser.parse_args(argv)


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def network_namespace() -> Iterator[str]:
    """A namespace with two veth pairs: lan0 (198.51.100.2/24) and wan0 (203.0.113.2/24) holding
    the default route.  Documentation prefixes only (RFC 5737)."""
    name = f"npsbx{os.getpid()}"
    ip("netns", "add", name)
    try:
        for command in (
            ("link", "set", "lo", "up"),
            ("link", "add", "lan0", "type", "veth", "peer", "name", "lan0-peer"),
            ("link", "add", "wan0", "type", "veth", "peer", "name", "wan0-peer"),
            *(("link", "set", link, "up") for link in ("lan0", "lan0-peer", "wan0", "wan0-peer")),
            ("addr", "add", "198.51.100.2/24", "dev", "lan0"),
            ("addr", "add", "203.0.113.2/24", "dev", "wan0"),
            ("route", "add", "default", "via", "203.0.113.1", "dev", "wan0", "metric", "100"),
        ):
            ip("-n", name, *command)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


def fd_limit_note() -> str | None:
    """What to say before dbus-daemon logs "Failed to set fd limit", or None if it will not.

    As root it raises RLIMIT_NOFILE to 65536 for a real system bus's many clients; in a
    container without CAP_SYS_RESOURCE the hard limit stops it.  A private bus with a handful of
    clients does not need the extra descriptors, so the warning is harmless here.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.getuid() != 0 or resource.RLIM_INFINITY in (soft, hard) or soft >= DBUS_FD_LIMIT:
        return None
    status = Path("/proc/self/status").read_text()
    effective = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    if hard >= DBUS_FD_LIMIT or int(effective.split()[1], 16) & (1 << CAP_SYS_RESOURCE):
        return None
    return (
        f'note: dbus-daemon will log "Failed to set fd limit to {DBUS_FD_LIMIT}": as root it'
        f" raises its descriptor limit for a real system bus, which this machine caps at {hard}"
        " (no CAP_SYS_RESOURCE); the private bus needs only a few, so it is harmless."
    )


@contextlib.contextmanager
def private_bus(directory: Path) -> Iterator[str]:
    """A dbus-daemon with system-bus semantics and dbus/org.netpathd1.conf; yields its address."""
    (directory / "system.d").mkdir()
    (directory / "services").mkdir()
    shutil.copy(POLICY, directory / "system.d" / POLICY.name)
    config = directory / "bus.conf"
    config.write_text(BUS_TEMPLATE.read_text().replace("@DIR@", str(directory)))
    if note := fd_limit_note():
        print(note, file=sys.stderr, flush=True)
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--print-address"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # one line, the address, printed once the socket listens
        text=True,
        start_new_session=True,  # Ctrl-C in the terminal reaches only the sandbox
    )
    try:
        if bus.stdout is None or not bus.stdout.readline().strip():
            raise SystemExit("scripts/sandbox: dbus-daemon did not start")
        yield f"unix:path={directory}/bus.socket"
    finally:
        stop(bus)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(process: subprocess.Popen[str], notify: socket.socket) -> None:
    """Block until netpathd sends READY=1, as systemd would; exit if it dies or never does."""
    deadline = time.monotonic() + READY_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([notify], [], [], min(remaining, 0.2))
        if readable and "READY=1" in notify.recv(4096).decode(errors="replace").splitlines():
            return
        if process.poll() is not None:
            raise SystemExit(f"scripts/sandbox: netpathd exited with status {process.returncode}")
    raise SystemExit(f"scripts/sandbox: netpathd was not ready within {READY_TIMEOUT:g}s")


@contextlib.contextmanager
def netpathd(
    namespace: str, address: str, workdir: Path, log: IO[str] | None, level: str
) -> Iterator[subprocess.Popen[str]]:
    for sub in ("config", "state", "systemd"):
        (workdir / sub).mkdir()
    notify_path = str(workdir / "notify.socket")
    env = {key: value for key, value in os.environ.items() if key != "NETPATHD_BUS_ADDRESS"}
    env["NOTIFY_SOCKET"] = notify_path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        argv = ["ip", "netns", "exec", namespace, sys.executable, "-m", "netpathd"]
        process = subprocess.Popen(
            [
                *argv,
                f"--bus-address={address}",
                f"--config-dir={workdir / 'config'}",
                f"--state-dir={workdir / 'state'}",
                f"--runtime-dir={workdir / 'run'}",
                f"--resolv-conf={workdir / 'resolv.conf'}",
                f"--systemd-dir={workdir / 'systemd'}",
                f"--log-level={level}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,  # None: the terminal, inherited
            text=True,
            start_new_session=True,
        )
        try:
            wait_ready(process, notify)
            yield process
        finally:
            stop(process)


def banner(namespace: str, address: str, workdir: Path, pid: int, log: str) -> str:
    return f"""
netpathd is running (pid {pid}) in network namespace {namespace}
on a private bus. Try, in another terminal:

  busctl --address={address} get-property org.netpathd1 /org/netpathd1 \\
      org.netpathd1.Manager Version
  busctl --address={address} introspect org.netpathd1 /org/netpathd1

  export NETPATHD_BUS_ADDRESS={address}
  {NETPATHCTL} status
  {NETPATHCTL} dns set wan connection.interface-name wan0 connection.type ethernet \\
      ipv4.dns 203.0.113.53
  {NETPATHCTL} dns explain
  {NETPATHCTL} mptcp enable
  {NETPATHCTL} mptcp endpoint add 198.51.100.2 dev lan0 subflow
  {NETPATHCTL} mptcp endpoint show
  ip netns exec {namespace} ip mptcp endpoint show     # the kernel agrees
  cat {workdir / "resolv.conf"}

State: {workdir / "state"}   Config: {workdir / "config"}
Resolver file: {workdir / "resolv.conf"}   Unit drop-ins: {workdir / "systemd"}
Log: {log}
Press Ctrl-C to stop and remove everything.
"""


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(args.log_file.open("a")) if args.log_file else None
            namespace = stack.enter_context(network_namespace())
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="netpathd-")))
            workdir.chmod(0o755)  # unprivileged users may try the bus too
            (workdir / "bus").mkdir()
            address = stack.enter_context(private_bus(workdir / "bus"))
            daemon = stack.enter_context(netpathd(namespace, address, workdir, log, args.log_level))
            where = str(args.log_file) if args.log_file else "this terminal"
            print(banner(namespace, address, workdir, daemon.pid, where), flush=True)
            code = daemon.wait()
    except KeyboardInterrupt:
        print("netpathd stopped, the sandbox is removed", flush=True)
        return 0
    print(f"netpathd exited with status {code}; the sandbox is removed", file=sys.stderr)
    return 1


if __name__ == "__main__":
    # Explicit for SIGINT too: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    raise SystemExit(main(sys.argv[1:]))
