"""Dumping links, addresses and main-table default routes, in time slices.

Split from `rtnl` (the watcher) so each stays readable: this module builds the
dump requests, walks the messages of a datagram, and folds a dump into a
fresh `NetState` on its own unfiltered socket.  A dump of 100,000 default
routes is about 200 datagrams of 32 KiB, hundreds of messages each; decoding
one whole datagram, or all of them in one reader callback, would keep the
event loop from answering D-Bus calls, so the work is cut into `TIME_SLICE`s.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
import struct
import time
from collections.abc import Iterator

from netpathd.kernel.rtnl_decode import ROUTE_TYPES, RT_TABLE_MAIN, decode
from netpathd.model import netstate
from netpathd.model.links import NetState

log = logging.getLogger(__name__)

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
RECV_BUFFER = 256 << 10  # > the 32 KiB dump skbs and any single notification
TIME_SLICE = 0.005  # s of decoding per callback: a Ping waits at most a few of these
FREEZE_AFTER = 10_000  # folded messages between two gc.freeze() calls, see freeze_state()

NLMSGHDR = struct.Struct("=IHHII")
HDR_LEN = NLMSGHDR.size
RTM_DST_LEN = HDR_LEN + 1  # offsets of rtmsg fields within a message
RTM_TABLE = HDR_LEN + 4


def freeze_state() -> None:
    """Move what the state is made of out of the cyclic collector's reach.

    A table of 100,000 routes is about a million tracked objects, and each
    full collection that CPython (3.11) starts while a flood makes it grow
    walks all of them in one go: 0.2 to 0.7 s without a Ping answered,
    measured here.  The state holds no reference cycles, so frozen objects
    are still freed by reference counting when a newer state drops them;
    only cyclic garbage that exists at the moment of freezing stays.
    """
    gc.freeze()


def dump_requests(seq: int) -> list[bytes]:
    """Links, addresses of all families, then the main table of each family."""

    def request(msg_type: int, body: bytes, seq: int) -> bytes:
        flags = NLM_F_REQUEST | NLM_F_DUMP
        return NLMSGHDR.pack(HDR_LEN + len(body), msg_type, flags, seq, 0) + body

    main_table = (0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)  # dst_len .. flags of rtmsg
    return [
        request(RTM_GETLINK, bytes(16), seq),
        request(RTM_GETADDR, bytes(8), seq + 1),
        request(RTM_GETROUTE, struct.pack("=BBBBBBBBI", socket.AF_INET, *main_table), seq + 2),
        request(RTM_GETROUTE, struct.pack("=BBBBBBBBI", socket.AF_INET6, *main_table), seq + 3),
    ]


def messages(data: memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, offset, length) of each message in one datagram."""
    offset, end = 0, len(data)
    while offset + HDR_LEN <= end:
        length, msg_type, flags, seq, _ = NLMSGHDR.unpack_from(data, offset)
        if length < HDR_LEN or offset + length > end:
            log.error("malformed rtnetlink message (length %d), datagram skipped", length)
            return
        yield msg_type, flags, seq, offset, length
        offset += (length + 3) & ~3


def fold(state: NetState, msg_type: int, flags: int, raw: bytes) -> NetState:
    try:
        events = decode(msg_type, flags, raw)
    except Exception:  # a bad message is logged and skipped, never stops the watcher
        log.exception("undecodable rtnetlink message of type %d skipped", msg_type)
        return state
    return netstate.apply_all(state, events)


class Dump:
    """One run of link, address and route dumps on its own unfiltered socket.

    A dump datagram holds hundreds of default routes (32 KiB skbs), so it is
    decoded in time slices: what is left of one waits in `_rest` for the next
    callback, and the event loop answers D-Bus calls in between.
    """

    def __init__(self, sock: socket.socket, done: asyncio.Future[NetState]) -> None:
        self.sock = sock
        self.done = done
        self.state = NetState()
        self._requests = dump_requests(1)
        self._seq = 0
        self._buffer = bytearray(RECV_BUFFER)
        self._rest: tuple[memoryview, Iterator[tuple[int, int, int, int, int]]] | None = None
        self._resume: asyncio.Handle | None = None
        self._unfrozen = 0

    def send_next(self) -> None:
        request = self._requests.pop(0)
        self._seq = NLMSGHDR.unpack_from(request)[3]
        self.sock.send(request)  # a small datagram to the kernel: never blocks

    def on_readable(self) -> None:
        deadline = time.monotonic() + TIME_SLICE
        while not self.done.done():
            if self._rest is None:
                try:
                    size = self.sock.recv_into(self._buffer)
                except BlockingIOError:
                    return
                except OSError as error:
                    self.done.set_exception(error)
                    return
                data = memoryview(bytes(memoryview(self._buffer)[:size]))  # the buffer is reused
                self._rest = (data, messages(data))
            if not self._process(*self._rest, deadline):
                if self._resume is None:  # the socket may have nothing more to wake us up
                    self._resume = asyncio.get_running_loop().call_soon(self._resumed)
                return
            self._rest = None

    def _resumed(self) -> None:
        self._resume = None  # only here: one pending resume at most, whoever reads meanwhile
        self.on_readable()

    def cancel(self) -> None:
        if self._resume is not None:
            self._resume.cancel()

    def _process(
        self,
        data: memoryview,
        rest: Iterator[tuple[int, int, int, int, int]],
        deadline: float,
    ) -> bool:
        """Fold messages until the datagram ends (True) or the time slice does (False)."""
        for msg_type, flags, seq, offset, length in rest:
            if msg_type in ROUTE_TYPES:
                if data[offset + RTM_DST_LEN] or data[offset + RTM_TABLE] != RT_TABLE_MAIN:
                    continue  # the cheap path every BGP route of the main table takes
            elif msg_type in (NLMSG_DONE, NLMSG_ERROR):
                if seq == self._seq:
                    self._finish_one(struct.unpack_from("=i", data, offset + HDR_LEN)[0])
                continue
            self.state = fold(self.state, msg_type, flags, bytes(data[offset : offset + length]))
            self._unfrozen += 1
            if self._unfrozen >= FREEZE_AFTER:
                freeze_state()
                self._unfrozen = 0
            if time.monotonic() > deadline:
                return False
        return True

    def _finish_one(self, status: int) -> None:
        # A table filter naming a table never created answers ENOENT: no routes.
        if status < 0 and status != -errno.ENOENT:
            self.done.set_exception(OSError(-status, "rtnetlink dump failed"))
        elif self._requests:
            self.send_next()
        else:
            self.done.set_result(self.state)
