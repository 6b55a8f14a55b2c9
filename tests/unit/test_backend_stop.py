"""A back-end closed while a push's reply arrives stops its task (dns_backends/base.py).

Python 3.11's ``asyncio.wait_for`` returns the awaited result when the cancellation of its
caller and that result land in the same turn of the loop, swallowing the cancellation
(python/cpython gh-86296, fixed in 3.12).  A pusher cancelled that way went back to waiting
for the next plan, and the daemon's shutdown waited for it for ever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from dbus_fast import Message, MessageType

from netpathd.dns_backends.base import BackendContext, PushingBackend, bus_call
from netpathd.dns_backends.resolv_file import ResolverFileWriter
from netpathd.files.resolv_conf import RcManager
from netpathd.model.dns import GlobalDnsPriority
from netpathd.model.dns_plan import DnsMode, DnsPlan
from netpathd.model.links import NetState
from netpathd.model.split_dns import plan

STOPPED_WITHIN = 5.0


class HeldBus:
    """A bus whose replies the test hands out itself."""

    connected = True

    def __init__(self) -> None:
        self.replies: asyncio.Queue[asyncio.Future[Message]] = asyncio.Queue()

    async def call(self, message: Message) -> Message:
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.replies.put_nowait(reply)
        return await reply


class CallingBackend(PushingBackend):
    mode = DnsMode.DNSMASQ

    async def push(self, plan: DnsPlan) -> None:
        await bus_call(cast(Any, self._context.bus), Message(path="/", member="Push"), 5.0)

    async def close(self) -> None:
        await self.stop_pushing()


async def test_close_stops_a_push_whose_reply_arrives_with_it(tmp_path: Path) -> None:
    bus = HeldBus()
    files = ResolverFileWriter(tmp_path / "resolv.conf", tmp_path / "copy", RcManager.FILE)
    backend = CallingBackend(BackendContext(cast(Any, bus), None, files, tmp_path, lambda _: None))
    backend.apply(plan([], NetState(), GlobalDnsPriority(), DnsMode.DNSMASQ))
    reply = await asyncio.wait_for(bus.replies.get(), STOPPED_WITHIN)
    reply.set_result(Message(message_type=MessageType.METHOD_RETURN, reply_serial=1))
    await asyncio.wait_for(backend.close(), STOPPED_WITHIN)  # cancels in the same turn


async def test_bus_call_lets_a_cancellation_through_that_comes_with_the_reply() -> None:
    bus = HeldBus()
    call = asyncio.get_running_loop().create_task(
        bus_call(cast(Any, bus), Message(path="/", member="Push"), 5.0)
    )
    reply = await asyncio.wait_for(bus.replies.get(), STOPPED_WITHIN)
    reply.set_result(Message(message_type=MessageType.METHOD_RETURN, reply_serial=1))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
