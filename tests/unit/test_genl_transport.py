"""GenlTransport's waiting: none when the kernel has answered inside send(), bounded otherwise.

The kernel is played by the other end of a datagram socketpair, so these need no root.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from netpathd.kernel.genl_transport import GenlTransport

ACK = struct.pack("=IHHIIi", 20, 2, 0, 1, 0, 0)  # NLMSG_ERROR, sequence 1, error 0
BODY = bytes(4)  # a genetlink header; the fake kernel never reads it


@contextmanager
def fake_kernel() -> Iterator[tuple[GenlTransport, socket.socket]]:
    transport = GenlTransport()
    transport.close()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    transport._sock = ours
    try:
        yield transport, kernel
    finally:
        ours.close()
        kernel.close()


async def test_an_answer_that_is_already_there_arms_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A genetlink handler runs inside sendmsg(): its ack is queued before send() returns."""
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, *args: object, **kwargs: object) -> asyncio.TimerHandle:
        timers.append(when)
        return real_call_at(when, *args, **kwargs)  # type: ignore[arg-type]

    with fake_kernel() as (transport, kernel):
        kernel.send(ACK)
        monkeypatch.setattr(loop, "call_at", counting_call_at)
        assert await transport.request_body(BODY, 16, reply_within=5.0) == []
    assert timers == []


async def test_an_answer_that_does_not_come_is_waited_for_only_so_long() -> None:
    with fake_kernel() as (transport, _), pytest.raises(TimeoutError):
        await transport.request_body(BODY, 16, reply_within=0.05)


async def test_an_answer_that_comes_later_is_awaited() -> None:
    with fake_kernel() as (transport, kernel):
        asyncio.get_running_loop().call_later(0.01, kernel.send, ACK)
        assert await transport.request_body(BODY, 16, reply_within=5.0) == []
