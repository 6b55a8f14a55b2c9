"""An asyncio D-Bus client for tests: calls with typed errors and awaited signals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

DEST, PATH = "org.netpathd1", "/org/netpathd1"
TIMEOUT = 15.0


class CallError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name, self.text = name, text


class BusClient:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.changes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.signals: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        bus.add_message_handler(self._on_message)

    def _on_message(self, message: Message) -> None:
        if message.message_type is not MessageType.SIGNAL or message.path != PATH:
            return
        if message.member == "PropertiesChanged":
            interface, changed, _ = message.body
            values = {name: variant.value for name, variant in changed.items()}
            self.changes.put_nowait((interface, values))
        else:
            self.signals.put_nowait((message.member or "", list(message.body)))

    async def call(
        self, interface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> list[Any]:
        message = Message(
            destination=DEST,
            path=PATH,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
        # asyncio.timeout, not wait_for: in 3.11 wait_for swallows a cancellation that comes
        # in the turn of the reply (gh-86296), and a cancelled Ping loop pinged on for ever.
        async with asyncio.timeout(TIMEOUT):
            reply = await self.bus.call(message)
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise CallError(reply.error_name or "", reply.body[0] if reply.body else "")
        return list(reply.body)

    async def get(self, interface: str, name: str) -> Any:
        (value,) = await self.call(
            "org.freedesktop.DBus.Properties", "Get", "ss", [interface, name]
        )
        return value.value

    async def set(self, interface: str, name: str, value: Variant) -> None:
        await self.call("org.freedesktop.DBus.Properties", "Set", "ssv", [interface, name, value])

    async def next_change(self, interface: str, name: str) -> Any:
        """The value carried by the next PropertiesChanged of ``name``."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                changed_interface, values = await self.changes.get()
                if changed_interface == interface and name in values:
                    return values[name]

    async def next_signal(self, member: str) -> list[Any]:
        """The body of the next signal called ``member`` (other than PropertiesChanged)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                got, body = await self.signals.get()
                if got == member:
                    return body

    def drain(self) -> None:
        """Forget what arrived so far: the next wait sees only what follows."""
        for queue in (self.changes, self.signals):
            while not queue.empty():
                queue.get_nowait()

    async def wait_change(self, interface: str, name: str, wanted: Any) -> None:
        """Wait until a PropertiesChanged of ``name`` carries ``wanted``."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                changed_interface, values = await self.changes.get()
                if changed_interface == interface and values.get(name) == wanted:
                    return


async def add_match(bus: MessageBus, rule: str) -> None:
    """Have the bus daemon route the signals matching ``rule`` to ``bus``."""
    message = Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member="AddMatch",
        signature="s",
        body=[rule],
    )
    async with asyncio.timeout(TIMEOUT):
        reply = await bus.call(message)
    assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply


@asynccontextmanager
async def bus_client(address: str) -> AsyncIterator[BusClient]:
    bus = await MessageBus(bus_address=address).connect()
    client = BusClient(bus)
    await add_match(bus, f"type='signal',sender='{DEST}',path='{PATH}'")
    try:
        yield client
    finally:
        bus.disconnect()
