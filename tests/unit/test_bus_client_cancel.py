"""The tests' D-Bus client lets a cancellation through that comes with a reply.

test_netstate_flood hung that way (seen in the bus-loss hunt, py-spy + the task's stack):
answer_times cancelled its Ping loop in the turn a reply arrived, Python 3.11's
``asyncio.wait_for`` in ``BusClient.call`` returned the reply instead (gh-86296), the loop
pinged on, and ``gather`` waited for it for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from dbus_fast import Message, MessageType

from tests.support.dbus_client import BusClient


class HeldBus:
    """A bus whose replies the test hands out itself."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[asyncio.Future[Message]] = asyncio.Queue()

    def add_message_handler(self, handler: object) -> None:
        pass

    async def call(self, message: Message) -> Message:
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.replies.put_nowait(reply)
        return await reply


async def test_a_call_cancelled_as_its_reply_arrives_is_cancelled() -> None:
    bus = HeldBus()
    client = BusClient(cast(Any, bus))
    call = asyncio.get_running_loop().create_task(client.call("org.freedesktop.DBus.Peer", "Ping"))
    reply = await asyncio.wait_for(bus.replies.get(), 5)
    reply.set_result(Message(message_type=MessageType.METHOD_RETURN, reply_serial=1))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
