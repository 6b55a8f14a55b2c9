"""A thin D-Bus client for netpathctl: one connection, calls with typed errors.

Only dbus-fast and the standard library are imported here, so the CLI starts
fast (no pyroute2, no daemon code).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from netpathd import BUS_NAME, OBJECT_PATH

CALL_TIMEOUT = 30.0

BUS_REFUSED = "org.freedesktop.DBus.Error.AccessDenied"
DENIED = "org.netpathd1.Error.PermissionDenied"
NEEDS_AUTHENTICATION = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
# netpathd's denials start "not authorized for ACTION" (netpathd.bus.polkit)
_ACTION = re.compile(r"not authorized for (org\.netpathd1\.[a-z][a-z0-9.-]*[a-z0-9])")


def explain_denial(name: str, text: str, member: str) -> str:
    """One line saying what a refused call needs, instead of the raw refusal."""
    if name == BUS_REFUSED:
        # dbus-daemon's "Rejected send message, N matched rules; type=..." helps no one
        return (
            f"the bus refused {member}: its policy does not let this user call it "
            "(netpathd's own dbus/org.netpathd1.conf lets everyone call and leaves the "
            "decision to netpathd and polkit)"
        )
    match = _ACTION.match(text)
    action = match.group(1) if match else "the netpathd action"
    how = f"run as root, or ask the administrator for a polkit rule granting {action}"
    if name == NEEDS_AUTHENTICATION:
        return (
            f"not authorized for {action} without authentication: run netpathctl from a "
            f"terminal to authenticate (with a polkit agent), {how}"
        )
    return f"{text}; {how}"


class CallFailed(Exception):
    """A D-Bus error reply (or no bus at all), with the error name kept for the exit code."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})" if name else text)
        self.name = name
        self.text = text


class Client:
    def __init__(self, bus: MessageBus, interactive: bool = False) -> None:
        self._bus = bus
        # polkit may then ask the person to authenticate (busctl --allow-interactive-authorization)
        self._flags = (
            MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE
        )

    @classmethod
    async def connect(cls, address: str | None, interactive: bool = False) -> Client:
        from dbus_fast import BusType  # noqa: PLC0415

        bus = MessageBus(bus_address=address) if address else MessageBus(bus_type=BusType.SYSTEM)
        try:
            await asyncio.wait_for(bus.connect(), CALL_TIMEOUT)
        except (OSError, TimeoutError) as error:
            where = address or "the system bus"
            raise CallFailed("", f"cannot connect to {where}: {error}") from error
        return cls(bus, interactive)

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
                    flags=self._flags,
                )
            ),
            CALL_TIMEOUT,
        )
        if reply is None:  # only for NO_REPLY_EXPECTED calls, which we never make
            raise CallFailed("", f"{member}: no reply")
        if reply.message_type is MessageType.ERROR:
            name = reply.error_name or ""
            text = str(reply.body[0] if reply.body else name)
            if name in (BUS_REFUSED, DENIED, NEEDS_AUTHENTICATION):
                text = explain_denial(name, text, f"{interface}.{member}")
            raise CallFailed(name, text)
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
