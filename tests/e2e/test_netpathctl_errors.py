"""What netpathctl and netpathd say when the bus is wrong or the daemon does not answer:
one line naming what failed, a documented exit code, never a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bus import PrivateBus
from tests.support.ctl import NETPATHCTL, netpathctl
from tests.support.daemon import Daemon, daemon_argv, daemon_env
from tests.support.netns import Netns

EX_USAGE, EX_UNAVAILABLE = 64, 69  # sysexits.h, as systemd names them in `systemctl status`


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A Unix socket that accepts connections and never says a word (not a bus)."""
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/silent.socket"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(8)
            yield f"unix:path={path}"


def test_garbage_bus_address_is_bad_usage() -> None:
    result = netpathctl("garbage", "status")
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("netpathctl: invalid bus address 'garbage': ")


@pytest.mark.parametrize(
    ("variable", "named"),
    [
        ("NETPATHD_BUS_ADDRESS", "'garbage'"),
        ("DBUS_SYSTEM_BUS_ADDRESS", "in $DBUS_SYSTEM_BUS_ADDRESS"),  # the system bus's own
    ],
)
def test_garbage_bus_address_from_the_environment_is_bad_usage(variable: str, named: str) -> None:
    result = subprocess.run(
        [*NETPATHCTL, "status"],
        env={**daemon_env(), variable: "garbage"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"netpathctl: invalid bus address {named}: ")


def test_connecting_to_something_that_never_answers_times_out(silent_socket: str) -> None:
    result = netpathctl(silent_socket, "--timeout=1", "status")
    assert result.returncode == EX_UNAVAILABLE
    line = one_line(result.stderr)
    assert line == f"netpathctl: timed out connecting to {silent_socket} (1s)"


def test_timeout_must_be_positive() -> None:
    result = netpathctl("garbage", "--timeout=0", "status")
    assert result.returncode == 2
    assert "--timeout: must be a positive number of seconds" in result.stderr


@pytest.mark.integration
def test_a_daemon_that_does_not_answer_times_out_naming_the_call(
    daemon: Daemon, bus: PrivateBus
) -> None:
    daemon.signal(signal.SIGSTOP)  # `ip netns exec` exec()s: this stops netpathd itself
    try:
        result = netpathctl(bus.address, "--timeout=1", "status")
        reload = netpathctl(bus.address, "--timeout=1", "reload")
    finally:
        daemon.signal(signal.SIGCONT)
    assert result.returncode == EX_UNAVAILABLE
    assert one_line(result.stderr) == (
        "netpathctl: org.netpathd1 did not answer org.freedesktop.DBus.Properties.GetAll within 1s"
    )
    assert reload.returncode == EX_UNAVAILABLE
    assert one_line(reload.stderr) == (
        "netpathctl: org.netpathd1 did not answer org.netpathd1.Manager.Reload within 1s"
    )


def run_daemon(ns: Netns, address: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    for sub in ("config", "state"):
        (workdir / sub).mkdir(exist_ok=True)
    return subprocess.run(
        daemon_argv(ns, address, workdir, f"--systemd-dir={workdir / 'systemd'}"),
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_daemon_with_a_garbage_bus_address(ns: Netns, tmp_path: Path) -> None:
    result = run_daemon(ns, "garbage", tmp_path)
    assert result.returncode == EX_USAGE
    assert one_line(result.stderr).startswith("netpathd: ERROR: invalid bus address 'garbage': ")


@pytest.mark.integration
def test_daemon_without_a_bus(ns: Netns, tmp_path: Path) -> None:
    address = f"unix:path={tmp_path}/no-bus.socket"
    result = run_daemon(ns, address, tmp_path)
    assert result.returncode == EX_UNAVAILABLE
    assert one_line(result.stderr).startswith(f"netpathd: ERROR: cannot connect to {address}: ")


@pytest.mark.integration
def test_daemon_on_something_that_never_answers(
    ns: Netns, tmp_path: Path, silent_socket: str
) -> None:
    result = run_daemon(ns, silent_socket, tmp_path)
    assert result.returncode == EX_UNAVAILABLE
    assert one_line(result.stderr) == (
        f"netpathd: ERROR: cannot connect to {silent_socket}: no answer within 10s"
    )


HANG_UP_PY = r"""
import asyncio, sys
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

async def main():
    bus = await MessageBus(bus_address=sys.argv[1]).connect()
    called = asyncio.Event()

    def on_message(message: Message) -> bool:
        if message.message_type is MessageType.METHOD_CALL:
            called.set()
            return True  # handled: dbus-fast sends no reply
        return False

    bus.add_message_handler(on_message)
    await bus.request_name("org.netpathd1")
    print("ready", flush=True)
    await called.wait()
    bus.disconnect()

asyncio.run(main())
"""


@pytest.mark.integration
def test_a_daemon_that_hangs_up_during_the_call(bus: PrivateBus, tmp_path: Path) -> None:
    """dbus-daemon answers NoReply for a callee that left without replying: say so."""
    script = tmp_path / "hang_up.py"
    script.write_text(HANG_UP_PY)
    fake = subprocess.Popen(
        [sys.executable, str(script), bus.address], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        result = netpathctl(bus.address, "reload")
    finally:
        fake.kill()
        fake.wait(30)
    assert result.returncode == EX_UNAVAILABLE
    line = one_line(result.stderr)
    assert line.startswith(
        "netpathctl: org.netpathd1 did not answer org.netpathd1.Manager.Reload: "
    ), line
    assert "within" not in line


def connected(bus: PrivateBus, pid: int) -> bool:
    """Whether process `pid` holds a connection to `bus` (busctl list shows each one's PID)."""
    listing = bus.busctl("list", "--unique", "--no-pager", "--no-legend")
    return any(line.split()[1:2] == [str(pid)] for line in listing.splitlines())


@pytest.mark.integration
def test_ctrl_c_while_waiting_for_an_answer(daemon: Daemon, bus: PrivateBus) -> None:
    """Ctrl-C is how a user ends a wait: exit 130 as a shell reports it, no traceback."""
    daemon.signal(signal.SIGSTOP)
    try:
        # Caught, not ignored, while it starts: exec gives the child SIGINT's default, as a
        # terminal would, even when this suite runs in the background with SIGINT ignored.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(
                [*NETPATHCTL, f"--bus-address={bus.address}", "--timeout=120", "status"],
                env=daemon_env(),
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            deadline = time.monotonic() + 60
            while not connected(bus, proc.pid):  # then its GetAll is on its way
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    finally:
        daemon.signal(signal.SIGCONT)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 128 + signal.SIGINT
