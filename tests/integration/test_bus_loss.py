"""A daemon that lost its bus connection exits at once, with status 1, and says why.

Alive but off the bus is the worst state of a system service: systemd sees it running,
D-Bus activation cannot start another, and every client gets ServiceUnknown.  Exiting
lets `Restart=on-failure` bring a connected one back, as resolved and NetworkManager do.
Each test kills its own private dbus-daemon by PID in one state the daemon can be in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dbus_fast import Message

from netpathd.bus.flow_control import FlowControlledBus, NotConnected
from tests.integration.split_dns import prepare, set_settings, split_dns, wait_state
from tests.integration.test_dns_dnsmasq import dnsmasq_pids
from tests.integration.test_dns_resolved import resolved_frame
from tests.support.bus import ROOT, PrivateBus
from tests.support.daemon import Daemon, running_daemon
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

# A clean stop takes well under a second (test_daemon_lifecycle); the bound sits below
# the back-ends' 5 s CALL_TIMEOUT, which each bus call used to wait out once the bus was gone.
EXIT_WITHIN = 4.0
GIVE_UP_AFTER = 30.0  # how long a test waits to report how long a slow exit took
LOST = "lost the connection to the bus, exiting"
FLOOD_SERVED = 0.5  # s of CPU the daemon spent since the flood began: it is serving it
RESYNC_ROUTES = 20_000  # default routes: far more than the 4 MiB event queue holds


def kill_bus(bus: PrivateBus) -> float:
    """SIGKILL the test's own dbus-daemon; returns when it happened (monotonic)."""
    os.kill(bus.process.pid, signal.SIGKILL)
    bus.process.wait(timeout=10)
    return time.monotonic()


def assert_exits_for_bus_loss(daemon: Daemon, lost_at: float) -> str:
    """Status 1 and the reason in the log, within EXIT_WITHIN of the loss; returns the log."""
    try:
        status = daemon.process.wait(timeout=GIVE_UP_AFTER)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running {GIVE_UP_AFTER:g} s after the bus was lost; stderr:\n{daemon.stop()}"
        ) from None
    took = time.monotonic() - lost_at
    stderr = daemon.stop()
    assert status == 1, f"exit status {status}; stderr:\n{stderr}"
    assert LOST in stderr, stderr
    assert "Traceback" not in stderr, stderr  # one clear line, not a stray task's error
    assert took < EXIT_WITHIN, f"exited {took:.1f} s after the bus was lost; stderr:\n{stderr}"
    return stderr


async def test_a_call_after_the_bus_is_gone_fails_at_once(bus: PrivateBus) -> None:
    """dbus-fast 5.2 writes such a call to the closed socket's fd number: EBADF at best, and
    once the number is reused (the next socket the process opens) a writer on someone else's
    fd, spinning, with a reply that never comes."""
    connection = await FlowControlledBus(bus_address=bus.address).connect()
    number = connection._fd
    kill_bus(bus)
    with pytest.raises(EOFError):
        await asyncio.wait_for(connection.wait_for_disconnect(), 10)  # type: ignore[no-untyped-call]
    reused = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    while reused[-1].fileno() != number and len(reused) < 100:
        reused.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        assert reused[-1].fileno() == number, "the bus socket's fd number was not reused"
        ping = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus.Peer",
            member="Ping",
        )
        with pytest.raises(NotConnected):
            await asyncio.wait_for(connection.call(ping), 2.0)
        with pytest.raises(NotConnected):
            await asyncio.wait_for(connection.send(ping), 2.0)
    finally:
        for sock in reused:
            sock.close()


@pytest.mark.parametrize("corked", [False, True], ids=["alone", "with-a-calls-signals"])
async def test_a_send_that_finds_the_bus_gone_fails_quietly(bus: PrivateBus, corked: bool) -> None:
    """The write that meets the dead peer (EPIPE) finalizes the bus, and dbus-fast's
    ``schedule_write`` then registers the closed fd with the loop: EBADF raised out of the
    send, which the flood test saw as a traceback in a method's reply."""
    connection = await FlowControlledBus(bus_address=bus.address).connect()
    kill_bus(bus)  # waits for its death; the loop has not read the EOF yet
    signal = Message.new_signal("/", "org.netpathd1.Test", "Tick", "u", [1])
    messages = [signal, signal] if corked else [signal]
    sending = connection._send_together(messages) if corked else connection.send(signal)
    with pytest.raises((NotConnected, BrokenPipeError, ConnectionResetError)):
        await asyncio.wait_for(sending, 2.0)
    assert connection._disconnected


def test_idle_daemon_exits_when_the_bus_dies(daemon: Daemon, bus: PrivateBus) -> None:
    assert_exits_for_bus_loss(daemon, kill_bus(bus))


def cpu_seconds(pid: int) -> float:
    """User and system time of ``pid`` (proc(5): fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_daemon_exits_when_the_bus_dies_during_a_flood_of_calls(
    daemon: Daemon, bus: PrivateBus
) -> None:
    """Replies queued in the writer (Introspect is the largest) when the socket goes."""
    before = cpu_seconds(daemon.process.pid)
    flood = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.flood_client",
            f"--socket={bus.directory / 'bus.socket'}",
            "--kind=introspect",
            "--connections=4",
            "--calls=1000000",
            "--in-flight=100",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(daemon.process.pid) - before < FLOOD_SERVED:
            assert flood.poll() is None, "the flood client ended early"
            assert time.monotonic() < deadline, "the daemon did not serve the flood"
            time.sleep(0.01)
        lost_at = kill_bus(bus)
    finally:
        flood.kill()
        flood.wait(timeout=10)
    assert_exits_for_bus_loss(daemon, lost_at)


def route_flood(directory: Path) -> Path:
    """Default routes with falling metrics: the kernel inserts each at its list's head."""
    lines = ["link add bl0 type veth peer name bl1", "link set bl0 up", "link set bl1 up"]
    lines.append("address add 198.51.100.2/24 dev bl0")
    lines += [
        f"route add default via 198.51.100.1 dev bl0 metric {1000 + RESYNC_ROUTES - n}"
        for n in range(RESYNC_ROUTES)
    ]
    batch = directory / "routes.batch"
    batch.write_text("\n".join([*lines, ""]))
    return batch


def test_daemon_exits_when_the_bus_dies_during_a_netlink_resync(
    daemon: Daemon, bus: PrivateBus, ns: Netns, tmp_path: Path
) -> None:
    """Stopped, the daemon's event queue overruns; continued, it resyncs with no bus left."""
    daemon.signal(signal.SIGSTOP)
    try:
        flood = ["nice", "-n", "19", "ip", "-n", ns.name, "-batch", str(route_flood(tmp_path))]
        subprocess.run(flood, check=True, timeout=300)
        lost_at = kill_bus(bus)
    finally:
        daemon.signal(signal.SIGCONT)
    stderr = assert_exits_for_bus_loss(daemon, lost_at)
    assert "rtnetlink notifications lost" in stderr, stderr


async def wait_running(address: str) -> None:
    """The back-end has pushed a plan: it holds a match and has links to revert."""
    async with bus_client(address) as client:
        await wait_state(client, "running")


async def test_dnsmasq_mode_exits_and_stops_its_dnsmasq_when_the_bus_dies(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    with split_dns(ns, tmp_path, "127.0.0.1"):
        prepare(tmp_path, "dnsmasq")
        with running_daemon(ns, bus, tmp_path) as daemon:
            await wait_running(bus.address)
            assert dnsmasq_pids(ns)
            stderr = assert_exits_for_bus_loss(daemon, kill_bus(bus))
            assert dnsmasq_pids(ns) == []
    assert stderr.index(LOST) < stderr.index("stopped dnsmasq"), "the reason came last"


async def test_resolved_mode_exits_when_the_bus_dies(ns: Netns, tmp_path: Path) -> None:
    with resolved_frame(ns, tmp_path) as frame:
        await wait_running(frame.bus.address)
        assert_exits_for_bus_loss(frame.daemon, kill_bus(frame.bus))


async def test_resolved_mode_exits_when_the_bus_dies_while_a_push_waits_for_resolved(
    ns: Netns, tmp_path: Path
) -> None:
    """A stopped resolved holds the push's call open; the bus goes with the call in flight."""
    with resolved_frame(ns, tmp_path) as frame:
        resolved = frame.resolved.process
        assert resolved is not None
        async with bus_client(frame.bus.address) as client:
            await wait_state(client, "running")
            resolved.send_signal(signal.SIGSTOP)
            try:
                await set_settings(client, "wan", {"ipv4.dns-search": ["~wan.example"]})
                # Answered after the push task's turn: its call to resolved is on the bus.
                await client.call("org.freedesktop.DBus.Peer", "Ping")
                lost_at = kill_bus(frame.bus)
            finally:
                resolved.send_signal(signal.SIGCONT)
        assert_exits_for_bus_loss(frame.daemon, lost_at)
