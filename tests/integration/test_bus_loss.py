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
import time
from pathlib import Path

import pytest
from dbus_fast import Message

from netpathd.bus.flow_control import FlowControlledBus, NotConnected
from tests.integration.split_dns import prepare, set_settings, split_dns, wait_state
from tests.integration.test_dns_dnsmasq import dnsmasq_pids
from tests.integration.test_dns_resolved import resolved_frame
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

# A clean stop takes well under a second (test_daemon_lifecycle); the bound sits below
# the back-ends' 5 s CALL_TIMEOUT, which each bus call used to wait out once the bus was gone.
EXIT_WITHIN = 4.0
GIVE_UP_AFTER = 30.0  # how long a test waits to report how long a slow exit took
LOST = "lost the connection to the bus, exiting"


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
            assert_exits_for_bus_loss(daemon, kill_bus(bus))
            assert dnsmasq_pids(ns) == []


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
