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
from netpathd.ctl.cli import CALL_TIMEOUT, UsageError

# What dbus-daemon answers in our place once its own reply timeout has passed.
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"

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
    def __init__(
        self, bus: MessageBus, timeout: float = CALL_TIMEOUT, interactive: bool = False
    ) -> None:
        self._bus = bus
        self._timeout = timeout
        # polkit may then ask the person to authenticate (busctl --allow-interactive-authorization)
        self._flags = (
            MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE
        )

    @classmethod
    async def connect(
        cls, address: str | None, time_limit: float = CALL_TIMEOUT, interactive: bool = False
    ) -> Client:
        """Connect within `time_limit` seconds, the limit of each call too; a malformed address
        is a UsageError."""
        from dbus_fast import BusType  # noqa: PLC0415
        from dbus_fast.errors import AuthError, DBusError, InvalidAddressError  # noqa: PLC0415

        where = address or "the system bus"
        try:
            bus = (
                MessageBus(bus_address=address) if address else MessageBus(bus_type=BusType.SYSTEM)
            )
            await asyncio.wait_for(bus.connect(), time_limit)
        except InvalidAddressError as error:  # from the parser, or for an unknown transport
            shown = repr(address) if address else "in $DBUS_SYSTEM_BUS_ADDRESS"
            raise UsageError(f"invalid bus address {shown}: {error}") from error
        except TimeoutError as error:
            raise CallFailed("", f"timed out connecting to {where} ({time_limit:g}s)") from error
        except (OSError, AuthError, DBusError) as error:
            raise CallFailed("", f"cannot connect to {where}: {error}") from error
        return cls(bus, time_limit, interactive)

    def close(self) -> None:
        self._bus.disconnect()

    async def call(
        self, interface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> list[Any]:
        message = Message(
            destination=BUS_NAME,
            path=OBJECT_PATH,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
            flags=self._flags,
        )
        return list((await self._send(message)).body)

    async def _send(self, message: Message) -> Message:
        """The reply to `message`, or CallFailed naming the call that was refused or unanswered."""
        what = f"{message.interface}.{message.member}"
        unanswered = f"{message.destination} did not answer {what}"
        try:
            reply = await asyncio.wait_for(self._bus.call(message), self._timeout)
        except TimeoutError as error:
            raise CallFailed(NO_REPLY, f"{unanswered} within {self._timeout:g}s") from error
        if reply is None:  # only for NO_REPLY_EXPECTED calls, which we never make
            raise CallFailed("", f"{what}: no reply")
        if reply.message_type is MessageType.ERROR:
            name = reply.error_name or ""
            text = str(reply.body[0] if reply.body else name)
            if name == NO_REPLY:  # e.g. "... disconnected ... without replying"
                raise CallFailed(NO_REPLY, f"{unanswered}: {text}")
            if name in (BUS_REFUSED, DENIED, NEEDS_AUTHENTICATION):
                text = explain_denial(name, text, what)
            raise CallFailed(name, text)
        return reply

    def add_message_handler(self, handler: Callable[[Message], bool | None]) -> None:
        self._bus.add_message_handler(handler)

    async def add_match(self, rule: str) -> None:
        """Ask the bus to route matching signals to us (the bus, not the daemon, answers)."""
        await self._send(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[rule],
            )
        )

    async def get_all(self, interface: str) -> dict[str, Any]:
        (values,) = await self.call("org.freedesktop.DBus.Properties", "GetAll", "s", [interface])
        return {name: variant.value for name, variant in values.items()}

    async def set_property(self, interface: str, name: str, value: Variant) -> None:
        await self.call("org.freedesktop.DBus.Properties", "Set", "ssv", [interface, name, value])
