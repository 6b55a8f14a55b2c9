"""Connecting to the bus and owning ``org.netpathd1``.

Objects are exported before the name is requested, so the first client that
sees the name appear can already call every method (systemd-resolved does the
same: ``manager_connect_bus()`` adds all vtables, then requests the name).
"""

from __future__ import annotations

import asyncio

from dbus_fast import BusType, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.errors import AuthError, DBusError, InvalidAddressError
from dbus_fast.service import ServiceInterface

from netpathd import BUS_NAME, OBJECT_PATH
from netpathd.bus.flow_control import FlowControlledBus
from netpathd.errors import Failed, InvalidArgument

CONNECT_TIMEOUT = 10.0


class BadBusAddress(InvalidArgument):
    """The bus address cannot be parsed (the daemon exits EX_USAGE)."""


class BusUnavailable(Failed):
    """Nothing answers as a bus at the address (the daemon exits EX_UNAVAILABLE)."""


def new_bus(address: str | None) -> MessageBus:
    """An unconnected bus for ``address`` (or the system bus): refuses a malformed address."""
    try:
        if address:
            return FlowControlledBus(bus_address=address)
        return FlowControlledBus(bus_type=BusType.SYSTEM)
    except InvalidAddressError as error:
        raise _bad_address(address, error) from error


def _bad_address(address: str | None, error: InvalidAddressError) -> BadBusAddress:
    shown = repr(address) if address else "in $DBUS_SYSTEM_BUS_ADDRESS"
    return BadBusAddress(f"invalid bus address {shown}: {error}")


async def connect(address: str | None) -> MessageBus:
    """The bus at ``address``, or the system bus, with flow control (bus/flow_control.py)."""
    bus = new_bus(address)
    where = address or "the system bus"
    try:
        return await asyncio.wait_for(bus.connect(), CONNECT_TIMEOUT)
    except InvalidAddressError as error:  # an unknown transport is found only here
        raise _bad_address(address, error) from error
    except TimeoutError as error:
        why = f"no answer within {CONNECT_TIMEOUT:g}s"
        raise BusUnavailable(f"cannot connect to {where}: {why}") from error
    except (OSError, AuthError, DBusError) as error:
        raise BusUnavailable(f"cannot connect to {where}: {error}") from error


async def publish(bus: MessageBus, interfaces: list[ServiceInterface]) -> None:
    """Export the interfaces, then take the name; refuse to share it."""
    for interface in interfaces:
        bus.export(OBJECT_PATH, interface)
    try:
        reply = await asyncio.wait_for(
            bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE), CONNECT_TIMEOUT
        )
    except DBusError as error:
        raise Failed(f"not allowed to own {BUS_NAME}: {error.text}") from error
    if reply is not RequestNameReply.PRIMARY_OWNER:
        raise Failed(f"{BUS_NAME} is already owned on this bus: is another netpathd running?")
