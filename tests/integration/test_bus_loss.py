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
import time

import pytest
from dbus_fast import Message

from netpathd.bus.flow_control import FlowControlledBus, NotConnected
from tests.support.bus import PrivateBus

pytestmark = pytest.mark.integration


def kill_bus(bus: PrivateBus) -> float:
    """SIGKILL the test's own dbus-daemon; returns when it happened (monotonic)."""
    os.kill(bus.process.pid, signal.SIGKILL)
    bus.process.wait(timeout=10)
    return time.monotonic()


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
