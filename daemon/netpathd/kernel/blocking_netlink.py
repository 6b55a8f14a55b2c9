"""Netlink requests whose kernel handler sleeps, sent from a worker thread on their own socket.

The kernel runs a generic netlink handler inside the sender's ``sendmsg()``:
``mptcp_pm_nl_del_addr_doit`` and ``mptcp_pm_nl_flush_addrs_doit``
(net/mptcp/pm_kernel.c) wait there for an RCU grace period
(``synchronize_rcu()``, 7-15 ms measured on 6.18).  Sent from the event loop,
that wait stalls every D-Bus caller.  A fresh socket per request keeps the
worker thread away from the loop's socket and its sequence numbers; the
threads share the process's network namespace, so both talk to the same
kernel table.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from pyroute2.netlink.exceptions import NetlinkError

_NETLINK_GENERIC = 16
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10  # the ack does not echo the request
_NETLINK_EXT_ACK = 11  # the ack carries the kernel's message (extack)
_NLMSG_ERROR = 2
_NLM_F_ACK_TLVS = 0x200
_NLMSGERR_ATTR_MSG = 1
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_ATTR = struct.Struct("=HH")  # struct nlattr


def _ack_error(reply: bytes, sequence: int) -> NetlinkError | None:
    """The refusal in the kernel's ack to ``sequence``; None when it succeeded."""
    offset = 0
    while offset + _HEADER.size <= len(reply):
        length, kind, flags, seq, _ = _HEADER.unpack_from(reply, offset)
        if kind == _NLMSG_ERROR and seq == sequence:
            (code,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
            if code == 0:
                return None
            return NetlinkError(-code, _extack_text(reply[offset : offset + length], flags))
        offset += max((length + 3) & ~3, _HEADER.size)
    return NetlinkError(0, "the kernel's answer holds no acknowledgement")


def _extack_text(message: bytes, flags: int) -> str:
    if not flags & _NLM_F_ACK_TLVS:
        return ""
    offset = _HEADER.size + 4 + _HEADER.size  # header, error code, the request's header
    while offset + _ATTR.size <= len(message):
        length, kind = _ATTR.unpack_from(message, offset)
        if length < _ATTR.size:
            break
        if kind == _NLMSGERR_ATTR_MSG:
            return message[offset + _ATTR.size : offset + length].rstrip(b"\0").decode()
        offset += (length + 3) & ~3
    return ""


def _send_and_wait(request: bytes, sequence: int, timeout: float) -> None:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_GENERIC) as sock:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        sock.settimeout(timeout)  # TimeoutError, like asyncio.wait_for on the loop's socket
        sock.bind((0, 0))
        sock.send(request)
        error = _ack_error(sock.recv(65536), sequence)
    if error is not None:
        raise error


async def request_off_loop(request: bytes, sequence: int, reply_within: float) -> None:
    """Send an encoded request that asks for an ack; raise NetlinkError when refused."""
    await asyncio.to_thread(_send_and_wait, request, sequence, reply_within)
