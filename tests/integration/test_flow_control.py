"""netpathd/bus/flow_control.py on a real private dbus-daemon, with a small test service.

The service runs in the test's own loop, so the tests can hold its handlers open and look
at its write queue; the dbus-daemon is stopped (SIGSTOP) to make the daemon's socket fill
exactly as a bus that cannot keep up would.
"""

# No "from __future__ import annotations" here: dbus-fast reads the annotations of Probe.
import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusUInt32
from dbus_fast.service import (
    PropertyAccess,
    ServiceInterface,
    dbus_method,
    dbus_property,
    dbus_signal,
)

from netpathd.bus.flow_control import (
    MAX_HELD_SIGNALS,
    MAX_PENDING_CALLS,
    SIGNAL_BACKLOG,
    FlowControlledBus,
)
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon
from tests.support.dbus_client import BusClient, CallError, bus_client

pytestmark = pytest.mark.integration

NAME, PATH, INTERFACE = "org.netpathd1", "/org/netpathd1", "org.netpathd1.Test"
TIMEOUT = 30.0


class Probe(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(INTERFACE)
        self.gate = asyncio.Event()
        self.counter = 0

    @dbus_method()
    async def Wait(self) -> None:
        await self.gate.wait()

    @dbus_property(access=PropertyAccess.READ)
    def Counter(self) -> DBusUInt32:
        return self.counter

    @dbus_signal()
    def Tick(self, number: int) -> DBusUInt32:
        return number

    @dbus_method()
    async def Count(self) -> DBusUInt32:
        """What an endpoint call does: change, tell observers, reply."""
        self.count()
        self.Tick(self.counter)
        return self.counter

    @dbus_method()
    async def CountThenWait(self) -> None:
        self.count()
        await self.gate.wait()

    def count(self) -> None:
        self.counter += 1
        self.emit_properties_changed({"Counter": self.counter})


@asynccontextmanager
async def probe_service(bus: PrivateBus) -> AsyncIterator[tuple[FlowControlledBus, Probe]]:
    service = FlowControlledBus(bus_address=bus.address)
    await service.connect()
    probe = Probe()
    service.export(PATH, probe)
    await service.request_name(NAME)
    try:
        yield service, probe
    finally:
        probe.gate.set()
        service.disconnect()


@contextmanager
def stopped(bus: PrivateBus) -> Iterator[None]:
    """The dbus-daemon paused: it reads nothing, so the service's socket fills."""
    bus.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        bus.process.send_signal(signal.SIGCONT)


def call(member: str, flags: MessageFlag = MessageFlag.NONE) -> Message:
    return Message(destination=NAME, path=PATH, interface=INTERFACE, member=member, flags=flags)


async def test_calls_beyond_the_bound_are_refused_at_once(bus: PrivateBus) -> None:
    async with probe_service(bus) as (_, probe):
        client = await MessageBus(bus_address=bus.address).connect()
        try:
            calls = [asyncio.ensure_future(client.call(call("Wait"))) for _ in range(100)]
            waiting: set[asyncio.Future[Message]] = set(calls)
            async with asyncio.timeout(TIMEOUT):
                while len(waiting) > MAX_PENDING_CALLS:
                    _, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            refused = [c.result() for c in calls if c.done()]
            assert {r.error_name for r in refused} == {"org.netpathd1.Error.LimitsExceeded"}
            assert "wait for them before sending more" in refused[0].body[0]

            probe.gate.set()
            async with asyncio.timeout(TIMEOUT):
                replies = await asyncio.gather(*calls)
            answered = [r for r in replies if r.message_type is MessageType.METHOD_RETURN]
            assert len(answered) == MAX_PENDING_CALLS
            again = await asyncio.wait_for(client.call(call("Wait")), TIMEOUT)
            assert again.message_type is MessageType.METHOD_RETURN  # the bound was released
        finally:
            client.disconnect()


async def receive_until(client: BusClient, last: int) -> tuple[list[int], list[int]]:
    """Counter values and Tick numbers received until Counter reaches ``last``."""
    counters: list[int] = []
    async with asyncio.timeout(TIMEOUT):
        while not counters or counters[-1] != last:
            interface, values = await client.changes.get()
            if interface == INTERFACE:
                counters.append(values["Counter"])
    ticks: list[int] = []
    while not client.signals.empty():
        member, body = client.signals.get_nowait()
        if member == "Tick":
            ticks.append(body[0])
    return counters, ticks


async def test_signals_wait_for_a_full_socket_and_coalesce(
    bus: PrivateBus, caplog: pytest.LogCaptureFixture
) -> None:
    async with probe_service(bus) as (service, probe), bus_client(bus.address) as client:
        writer: Any = service._writer
        with stopped(bus):
            for number in range(20_000):
                probe.Tick(number)
                probe.count()
                assert len(writer.messages) <= SIGNAL_BACKLOG  # held, not queued
            assert service.connected  # EAGAIN did not end the connection
        counters, ticks = await receive_until(client, last=20_000)
        # Every change arrived in order, most of them merged while the socket was full.
        assert counters == sorted(counters) and len(counters) < 20_000 // 4
        assert ticks == sorted(ticks) and ticks[-1] == 19_999
        assert len(ticks) < 20_000 // 4
        assert "dropped" in caplog.text
        # The newest held Tick signals survive; the oldest held ones were dropped.
        assert ticks[-MAX_HELD_SIGNALS:] == list(range(20_000 - MAX_HELD_SIGNALS, 20_000))


async def test_unknown_names_are_not_echoed_in_full(daemon: Daemon, bus: PrivateBus) -> None:
    long_name = "X" * 100_000
    async with bus_client(bus.address) as client:
        for path, interface, name, wanted in [
            (
                PATH,
                "org.netpathd1.Manager",
                long_name,
                "org.freedesktop.DBus.Error.UnknownProperty",
            ),
            (PATH, long_name, "Version", "org.freedesktop.DBus.Error.UnknownInterface"),
            (
                PATH,
                "org.freedesktop.DBus.Peer",
                long_name,
                "org.freedesktop.DBus.Error.UnknownProperty",
            ),
            (
                "/" + long_name,
                "org.netpathd1.Manager",
                "Version",
                "org.freedesktop.DBus.Error.UnknownObject",
            ),
        ]:
            reply = await asyncio.wait_for(
                client.bus.call(
                    Message(
                        destination=NAME,
                        path=path,
                        interface="org.freedesktop.DBus.Properties",
                        member="Get",
                        signature="ss",
                        body=[interface, name],
                    )
                ),
                TIMEOUT,
            )
            assert reply is not None and reply.error_name == wanted
            assert len(reply.body[0]) < 200 and "XXX..." in reply.body[0]
        with pytest.raises(CallError) as caught:
            await client.get("org.netpathd1.Manager", "Verison")
        assert '"Verison"' in caught.value.text  # a short name still reads back whole
        assert await client.get("org.netpathd1.Manager", "State") == "running"


class RecordedWrites:
    """The service's socket as its writer sees it, keeping what each send() wrote."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.writes: list[bytes] = []

    def send(self, data: bytes | memoryview) -> int:
        sent: int = self._sock.send(data)
        self.writes.append(bytes(data[:sent]))
        return sent


def message_types(data: bytes) -> list[MessageType]:
    """The type of every whole D-Bus message in ``data`` (little-endian, as dbus-fast writes)."""
    types, offset = [], 0
    while offset + 16 <= len(data):
        body = int.from_bytes(data[offset + 4 : offset + 8], "little")
        fields = int.from_bytes(data[offset + 12 : offset + 16], "little")
        header = 16 + fields + (-(16 + fields) % 8)
        types.append(MessageType(data[offset + 1]))
        offset += header + body
    return types


async def test_a_calls_signals_go_out_with_its_reply_in_one_write(bus: PrivateBus) -> None:
    """One write, signals first: the bus daemon is woken once, and every client still
    sees PropertiesChanged before the reply."""
    async with probe_service(bus) as (service, _), bus_client(bus.address) as client:
        writer: Any = service._writer
        recorded = writer.sock = RecordedWrites(writer.sock)
        reply = await asyncio.wait_for(client.bus.call(call("Count")), TIMEOUT)
        assert reply is not None and reply.body == [1]
        signal, reply_type = MessageType.SIGNAL, MessageType.METHOD_RETURN
        assert [message_types(data) for data in recorded.writes] == [[signal, signal, reply_type]]
        assert client.changes.get_nowait() == (INTERFACE, {"Counter": 1})
        assert client.signals.get_nowait() == ("Tick", [1])


async def test_a_handler_that_goes_on_waiting_does_not_hold_its_signals(
    bus: PrivateBus,
) -> None:
    async with probe_service(bus) as (_, probe), bus_client(bus.address) as client:
        reply = asyncio.ensure_future(client.bus.call(call("CountThenWait")))
        async with asyncio.timeout(TIMEOUT):
            assert await client.changes.get() == (INTERFACE, {"Counter": 1})
        assert not reply.done()
        probe.gate.set()
        async with asyncio.timeout(TIMEOUT):
            answer = await reply
        assert answer is not None and answer.message_type is MessageType.METHOD_RETURN


async def test_signals_of_a_call_that_wants_no_reply_still_go_out(bus: PrivateBus) -> None:
    async with probe_service(bus) as _, bus_client(bus.address) as client:
        await client.bus.send(call("Count", MessageFlag.NO_REPLY_EXPECTED))
        async with asyncio.timeout(TIMEOUT):
            assert await client.changes.get() == (INTERFACE, {"Counter": 1})
            assert await client.signals.get() == ("Tick", [1])


async def test_a_signal_outside_any_call_goes_out_at_once(bus: PrivateBus) -> None:
    async with probe_service(bus) as (service, probe), bus_client(bus.address) as client:
        writer: Any = service._writer
        recorded = writer.sock = RecordedWrites(writer.sock)
        probe.count()
        assert [message_types(data) for data in recorded.writes] == [[MessageType.SIGNAL]]
        async with asyncio.timeout(TIMEOUT):
            assert await client.changes.get() == (INTERFACE, {"Counter": 1})
