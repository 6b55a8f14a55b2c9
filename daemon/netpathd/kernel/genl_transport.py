"""Generic netlink requests on a plain socket, encoded and decoded by pyroute2's nla classes.

pyroute2 0.9.7's ``AsyncGenericNetlinkSocket`` spends about 360 µs on one
request (a GET_ADDR dump of 4 endpoints, measured here) that the kernel
answers in 7 µs; that was most of an ``AddEndpoint``.  So pyroute2 keeps what
it is good at, the message classes, and the socket is a plain non-blocking one
read with ``loop.sock_recv``.

Some handlers sleep: the kernel runs them inside the sender's ``sendmsg()``,
and ``mptcp_pm_nl_del_addr_doit`` / ``mptcp_pm_nl_flush_addrs_doit``
(net/mptcp/pm_kernel.c) wait there for an RCU grace period
(``synchronize_rcu()``, 7-15 ms on 6.18), which on the loop would stall every
D-Bus caller.  Those go out from a worker thread on a socket of their own
(``request_off_loop``); threads share the process's network namespace, so
both sockets reach the same kernel table.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import Iterator
from typing import Any

from pyroute2.netlink import CTRL_CMD_GETFAMILY, GENL_ID_CTRL, NLM_F_ACK, NLM_F_REQUEST, ctrlmsg
from pyroute2.netlink.exceptions import NetlinkError

_NETLINK_GENERIC = 16
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10  # an ack does not echo the request
_NETLINK_EXT_ACK = 11  # an ack carries the kernel's message (extack)
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_DUMP = 0x300
_NLM_F_ACK_TLVS = 0x200
_NLMSGERR_ATTR_MSG = 1
_RECEIVE_SIZE = 65536
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_ATTR = struct.Struct("=HH")  # struct nlattr
_CODE = struct.Struct("=i")


def _open(*, blocking: bool) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_GENERIC)
    try:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        sock.bind((0, 0))
        sock.setblocking(blocking)
    except OSError:
        sock.close()
        raise
    return sock


def _messages(buffer: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, sequence number, message) of every netlink message in ``buffer``."""
    offset = 0
    while offset + _HEADER.size <= len(buffer):
        length, kind, flags, sequence, _ = _HEADER.unpack_from(buffer, offset)
        if length < _HEADER.size:
            return
        yield kind, flags, sequence, buffer[offset : offset + length]
        offset += (length + 3) & ~3


def _error(message: bytes, flags: int) -> NetlinkError | None:
    """The refusal an NLMSG_ERROR or NLMSG_DONE carries; None for success."""
    if len(message) < _HEADER.size + _CODE.size:
        return None
    (code,) = _CODE.unpack_from(message, _HEADER.size)
    if code >= 0:
        return None
    return NetlinkError(-code, _extack_text(message, flags))


def _extack_text(message: bytes, flags: int) -> str:
    if not flags & _NLM_F_ACK_TLVS:
        return ""
    offset = _HEADER.size + _CODE.size + _HEADER.size  # header, code, the request's header
    while offset + _ATTR.size <= len(message):
        length, kind = _ATTR.unpack_from(message, offset)
        if length < _ATTR.size:
            break
        if kind == _NLMSGERR_ATTR_MSG:
            return message[offset + _ATTR.size : offset + length].rstrip(b"\0").decode()
        offset += (length + 3) & ~3
    return ""


def _collect(buffer: bytes, sequence: int, replies: list[bytes]) -> bool:
    """Add the answers to ``sequence`` found in ``buffer``; True once the last one came."""
    for kind, flags, seq, message in _messages(buffer):
        if seq != sequence:
            continue  # a late answer to a request that timed out
        if kind in (_NLMSG_ERROR, _NLMSG_DONE):
            if (error := _error(message, flags)) is not None:
                raise error
            return True
        replies.append(message)
    return False


def _pack(msg: Any) -> bytes:
    """A pyroute2 genlmsg packed, without its nlmsghdr (``_frame`` adds that)."""
    msg.encode()
    return bytes(msg.data)[_HEADER.size :]


def _frame(body: bytes, family: int, flags: int, sequence: int) -> bytes:
    """``body`` (genetlink header and attributes) behind its nlmsghdr."""
    return _HEADER.pack(_HEADER.size + len(body), family, flags, sequence, 0) + body


def _send_and_wait(request: bytes, sequence: int, reply_within: float) -> list[bytes]:
    with _open(blocking=True) as sock:
        sock.settimeout(reply_within)  # TimeoutError, as asyncio.wait_for gives on the loop
        sock.send(request)
        replies: list[bytes] = []
        while not _collect(sock.recv(_RECEIVE_SIZE), sequence, replies):
            pass
    return replies


class GenlTransport:
    """One request at a time on the loop's socket; answers matched by sequence number."""

    def __init__(self) -> None:
        self._sock = _open(blocking=False)
        self._sequence = itertools.count(1)
        self._lock = asyncio.Lock()

    def close(self) -> None:
        self._sock.close()

    async def request(self, msg: Any, family: int, *, dump: bool = False) -> list[bytes]:
        """Send ``msg`` (a pyroute2 genlmsg) and return the raw answers; NetlinkError on refusal.

        Every request that is not a dump asks for an ack, so its end is always known.
        """
        return await self.request_body(_pack(msg), family, dump=dump)

    async def request_body(
        self, body: bytes, family: int, *, dump: bool = False, reply_within: float | None = None
    ) -> list[bytes]:
        """``request`` for a message already packed (``netpathd.kernel.mptcp_codec``).

        A genetlink handler runs inside ``sendmsg()``, so its answer is usually
        queued before ``send()`` returns and is read at once, with no turn of the
        loop and no timer.  Only a wait (for the lock, for an answer) is bounded by
        ``reply_within`` seconds (TimeoutError); None leaves the bound to the caller.
        Arming and cancelling that timer for every request was about 10 µs of each
        of the two an ``AddEndpoint`` sends (issue 13).
        """
        if reply_within is not None and self._lock.locked():
            async with asyncio.timeout(reply_within):
                return await self._request_locked(body, family, dump, None)
        return await self._request_locked(body, family, dump, reply_within)

    async def _request_locked(
        self, body: bytes, family: int, dump: bool, reply_within: float | None
    ) -> list[bytes]:
        flags = NLM_F_REQUEST | (_NLM_F_DUMP if dump else NLM_F_ACK)
        async with self._lock:
            sequence = next(self._sequence)
            self._sock.send(_frame(body, family, flags, sequence))
            replies: list[bytes] = []
            while True:
                try:
                    answer = self._sock.recv(_RECEIVE_SIZE)
                except BlockingIOError:
                    answer = await self._receive(reply_within)
                if _collect(answer, sequence, replies):
                    return replies

    async def _receive(self, within: float | None) -> bytes:
        loop = asyncio.get_running_loop()
        if within is None:
            return await loop.sock_recv(self._sock, _RECEIVE_SIZE)
        async with asyncio.timeout(within):
            return await loop.sock_recv(self._sock, _RECEIVE_SIZE)

    async def request_off_loop(self, msg: Any, family: int, reply_within: float) -> None:
        """``request`` for a command whose kernel handler sleeps, from a worker thread."""
        await self.request_body_off_loop(_pack(msg), family, reply_within)

    async def request_body_off_loop(self, body: bytes, family: int, reply_within: float) -> None:
        """``request_off_loop`` for a message already packed."""
        sequence = next(self._sequence)
        data = _frame(body, family, NLM_F_REQUEST | NLM_F_ACK, sequence)
        await asyncio.to_thread(_send_and_wait, data, sequence, reply_within)

    async def family_id(self, name: str) -> int:
        """The id of the generic netlink family ``name``; NetlinkError ENOENT when unknown."""
        msg = ctrlmsg()
        msg["cmd"] = CTRL_CMD_GETFAMILY
        msg["version"] = 1
        msg["attrs"] = [("CTRL_ATTR_FAMILY_NAME", name)]
        (reply, *_) = await self.request(msg, GENL_ID_CTRL)
        answer = ctrlmsg(reply)
        answer.decode()
        return int(answer.get_attr("CTRL_ATTR_FAMILY_ID"))
