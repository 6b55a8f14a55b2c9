"""The kernel's ND user options (``RTNLGRP_ND_USEROPT``): RA options for user space.

A socket of its own rather than a group on the rtnetlink watcher's: these messages
carry no state to dump, and an overrun here must not make the watcher re-read every
link and route.  A lost message costs nothing lasting either: routers repeat their
RAs, and each one refreshes the lifetimes (``ENOBUFS`` is logged and reading goes on).

Message layout (``include/uapi/linux/rtnetlink.h``): ``struct nduseroptmsg`` (family,
pad, opts_len, ifindex, icmp type and code, padding: 16 bytes), then ``opts_len``
bytes of ND options as they were on the wire, then an ``NDUSEROPT_SRCADDR`` attribute.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

RTNLGRP_ND_USEROPT = 20
RTM_NEWNDUSEROPT = 68
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
ND_ROUTER_ADVERT = 134
_NLMSGHDR = struct.Struct("=IHHII")
_NDUSEROPTMSG = struct.Struct("=BBHiBBHI")
RECV_SIZE = 65536

OnOptions = Callable[[int, bytes], None]
"""Called with (ifindex, the RA's option bytes) for every router advertisement."""


def decode(datagram: bytes) -> list[tuple[int, bytes]]:
    """The (ifindex, options) of each RA message in one netlink datagram."""
    found = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(datagram):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(datagram, offset)
        if length < _NLMSGHDR.size:
            log.warning("ND user option: netlink message of length %d, rest skipped", length)
            break
        body = datagram[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3
        if kind != RTM_NEWNDUSEROPT or len(body) < _NDUSEROPTMSG.size:
            continue
        _family, _pad, opts_len, ifindex, icmp_type, _code, _pad2, _pad3 = (
            _NDUSEROPTMSG.unpack_from(body)
        )
        options = body[_NDUSEROPTMSG.size : _NDUSEROPTMSG.size + opts_len]
        if icmp_type != ND_ROUTER_ADVERT or len(options) < opts_len:
            log.warning("ND user option: truncated or not from an RA (ifindex %d)", ifindex)
            continue
        found.append((ifindex, options))
    return found


class NdUserOptWatcher:
    """Reads ``RTM_NEWNDUSEROPT`` and hands each message's options on, in the loop."""

    def __init__(self, on_options: OnOptions) -> None:
        self._on_options = on_options
        self._sock: socket.socket | None = None

    def start(self) -> None:
        sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE,
        )
        sock.bind((0, 0))
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_ND_USEROPT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, sock)

    def _readable(self, sock: socket.socket) -> None:
        while True:
            try:
                datagram = sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                log.warning("ND user options overran the socket; the next RAs refresh them")
                continue
            for ifindex, options in decode(datagram):
                self._on_options(ifindex, options)

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
