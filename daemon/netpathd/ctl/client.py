"""A thin D-Bus client for netpathctl: one connection, calls with typed errors.

Only dbus-fast and the standard library are imported here, so the CLI starts
fast (no pyroute2, no daemon code).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from netpathd import BUS_NAME, OBJECT_PATH

CALL_TIMEOUT = 30.0


class CallFailed(Exception):
    """A D-Bus error reply (or no bus at all), with the error name kept for the exit code."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})" if name else text)
        self.name = name
        self.text = text


class Client:
    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    @classmethod
    async def connect(cls, address: str | None) -> Client:
        from dbus_fast import BusType  # noqa: PLC0415

        bus = MessageBus(bus_address=address) if address else MessageBus(bus_type=BusType.SYSTEM)
        try:
            await asyncio.wait_for(bus.connect(), CALL_TIMEOUT)
        except (OSError, TimeoutError) as error:
            where = address or "the system bus"
            raise CallFailed("", f"cannot connect to {where}: {error}") from error
        return cls(bus)

    def close(self) -> None:
        self._bus.disconnect()

    async def call(
        self, interface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> list[Any]:
        reply = await asyncio.wait_for(
            self._bus.call(
                Message(
                    destination=BUS_NAME,
                    path=OBJECT_PATH,
                    interface=interface,
                    member=member,
                    signature=signature,
                    body=body or [],
                )
            ),
            CALL_TIMEOUT,
        )
        if reply is None:  # only for NO_REPLY_EXPECTED calls, which we never make
            raise CallFailed("", f"{member}: no reply")
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body else reply.error_name or ""
            raise CallFailed(reply.error_name or "", str(text))
        return list(reply.body)

    def add_message_handler(self, handler: Callable[[Message], bool | None]) -> None:
        self._bus.add_message_handler(handler)

    async def add_match(self, rule: str) -> None:
        """Ask the bus to route matching signals to us (the bus, not the daemon, answers)."""
        reply = await asyncio.wait_for(
            self._bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            ),
            CALL_TIMEOUT,
        )
        if reply is not None and reply.message_type is MessageType.ERROR:
            raise CallFailed(reply.error_name or "", str(reply.body[0] if reply.body else ""))

    async def get_all(self, interface: str) -> dict[str, Any]:
        (values,) = await self.call("org.freedesktop.DBus.Properties", "GetAll", "s", [interface])
        return {name: variant.value for name, variant in values.items()}

    async def set_property(self, interface: str, name: str, value: Variant) -> None:
        await self.call("org.freedesktop.DBus.Properties", "Set", "ssv", [interface, name, value])
