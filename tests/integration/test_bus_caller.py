"""netpathd.bus.caller against the installed dbus-fast: each handler sees its own call."""

from __future__ import annotations

import asyncio

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from netpathd.bus.caller import current_caller, watch_calls
from tests.support.bus import PrivateBus

pytestmark = pytest.mark.integration

NAME = "org.netpathd1"  # the only name the project's bus policy lets root own
PROPERTIES = "org.freedesktop.DBus.Properties"


class Probe(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.netpathd1.Probe")
        self.setters: list[str] = []

    @dbus_method()
    async def Who(self) -> DBusStr:
        for _ in range(5):  # other calls arrive meanwhile
            await asyncio.sleep(0.01)
        caller = current_caller()
        return f"{caller.sender} {caller.interactive}"

    @dbus_property()
    def Value(self) -> DBusStr:
        return ""

    @Value.setter  # type: ignore[no-redef]
    async def Value(self, value: DBusStr) -> None:
        await asyncio.sleep(0.01)
        self.setters.append(current_caller().sender)


def call(
    member: str,
    flags: MessageFlag,
    signature: str = "",
    body: list[object] | None = None,
    interface: str = "org.netpathd1.Probe",
) -> Message:
    return Message(
        destination=NAME,
        path="/probe",
        interface=interface,
        member=member,
        signature=signature,
        body=body or [],
        flags=flags,
    )


async def test_each_handler_sees_its_own_caller_and_flags(bus: PrivateBus) -> None:
    server = await MessageBus(bus_address=bus.address).connect()
    watch_calls(server)
    probe = Probe()
    server.export("/probe", probe)
    await server.request_name(NAME)
    clients = [await MessageBus(bus_address=bus.address).connect() for _ in range(4)]
    try:
        flags = [
            MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if index % 2 else MessageFlag.NONE
            for index in range(len(clients))
        ]
        calls = [(c, f) for c, f in zip(clients, flags, strict=True) for _ in range(3)]
        replies = await asyncio.gather(*(c.call(call("Who", f)) for c, f in calls))
        assert [r.body[0] for r in replies] == [f"{c.unique_name} {bool(f)}" for c, f in calls]
        value = ["org.netpathd1.Probe", "Value", Variant("s", "x")]
        sets = await asyncio.gather(
            *(c.call(call("Set", MessageFlag.NONE, "ssv", value, PROPERTIES)) for c in clients)
        )
        assert all(reply.message_type is MessageType.METHOD_RETURN for reply in sets)
        assert sorted(probe.setters) == sorted(c.unique_name for c in clients)
    finally:
        for client in clients:
            client.disconnect()
        server.disconnect()
