"""The rtnetlink watcher: links, addresses and main-table default routes.

Why a raw AF_NETLINK socket on `loop.add_reader` and not pyroute2's
`AsyncIPRoute`: a router carries a full BGP table (~1M routes) and netpathd
must only pay for its default routes.  `AsyncIPRoute` decodes every message of
a dump and every notification into Python objects (seconds of CPU for a table
dump, and again for each BGP churn burst), cannot take a socket filter, and a
pyroute2 socket is unusable after ENOBUFS anyway.  So this module owns two
plain sockets and the cheap header checks, and decodes the few messages that
survive them itself (`rtnl_decode`; pyroute2's `rtmsg` only for multipath routes).

Cost control, from the kernel outwards:

1. The event socket carries a classic BPF filter (`SO_ATTACH_FILTER`) that
   drops RTM_NEWROUTE/RTM_DELROUTE whose `rtm_dst_len` is not 0 or whose
   `rtm_table` is not RT_TABLE_MAIN before they are queued, so BGP churn costs
   netpathd no wake-up, no copy and no receive-buffer space.  Judging a whole
   skb by its first message is exact for notifications: `rtmsg_fib()`
   (net/ipv4/fib_semantics.c), `inet6_rt_notify()` (net/ipv6/route.c) and the
   link/address notifiers allocate one skb per message and hand it to
   `rtnl_notify()` -> `netlink_broadcast()`, which runs `sk_filter()` for each
   listener.  It would not be exact for dumps: `netlink_dump()` runs the same
   `sk_filter()` on skbs packed with many messages (measured: a filtered
   socket loses whole IPv6 route dump batches that start with a /64), hence
2. dumps run on a second, unfiltered socket that joins no group.  They ask
   for the main table only (NETLINK_GET_STRICT_CHK with `rtm_table` = 254;
   `ip_valid_fib_dump_req()` in net/ipv4/fib_frontend.c filters on table,
   protocol, type and RTA_OIF but refuses a non-zero `rtm_dst_len` with
   EINVAL), and skip the main table's other routes by reading two header
   bytes, without decoding.  Tables above 255 put RT_TABLE_COMPAT (252) in
   `rtm_table`, so `rtm_table == 254` is exactly "main".
3. Only then is a message decoded (`rtnl_decode`), and
4. never for longer than a `TIME_SLICE` per callback, dumps included
   (`rtnl_dump`): a flood of 100,000 routes leaves D-Bus calls answered.

Ordering: the event socket joins its groups before the dump is requested.
Notifications arriving during the dump are kept and folded in after it; each
NEW is an upsert and each DEL a removal of a whole object, so replaying them
on top of a dump that may already contain their effect ends in the kernel's
state.  ENOBUFS on the event socket means notifications were lost: both
sockets are replaced, everything is dumped again and the state is replaced
wholesale (a resync), as pyroute2 cannot reuse a socket after ENOBUFS either.
"""

from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable

from netpathd.errors import Failed
from netpathd.kernel.rtnl_decode import ROUTE_TYPES, RT_TABLE_MAIN, RTM_DELROUTE, RTM_NEWROUTE
from netpathd.kernel.rtnl_dump import (
    FREEZE_AFTER,
    NLMSGHDR,
    RECV_BUFFER,
    RTM_DST_LEN,
    RTM_TABLE,
    TIME_SLICE,
    Dump,
    fold,
    freeze_state,
    messages,
)
from netpathd.model.links import NetState

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33

RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400

GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
)
DEFAULT_RCVBUF = 4 << 20  # a link flap storm fits; BGP churn never reaches the queue
MAX_READS_PER_WAKEUP = 1024  # bounds one reader callback so other tasks still run
SYNC_ATTEMPTS = 5


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def route_filter() -> bytes:
    """Classic BPF: accept everything except non-default or non-main route messages.

    `ldh` loads big-endian while nlmsg_type is host order, hence the byte swap
    of the compared constants.
    """
    ld_h, ld_b, jeq, ret = 0x28, 0x30, 0x15, 0x06  # BPF_LD|BPF_H|BPF_ABS, ..., BPF_RET|BPF_K

    def host_u16(value: int) -> int:
        return int.from_bytes(struct.pack("=H", value), "big")

    return b"".join(
        (
            _bpf(ld_h, 0, 0, 4),  # 0: A = nlmsg_type
            _bpf(jeq, 1, 0, host_u16(RTM_NEWROUTE)),  # 1: -> 3
            _bpf(jeq, 0, 5, host_u16(RTM_DELROUTE)),  # 2: -> 3, else accept
            _bpf(ld_b, 0, 0, RTM_DST_LEN),  # 3: A = rtm_dst_len
            _bpf(jeq, 0, 2, 0),  # 4: dst_len != 0 -> drop
            _bpf(ld_b, 0, 0, RTM_TABLE),  # 5: A = rtm_table
            _bpf(jeq, 1, 0, RT_TABLE_MAIN),  # 6: main -> accept
            _bpf(ret, 0, 0, 0),  # 7: drop
            _bpf(ret, 0, 0, 0xFFFFFFFF),  # 8: accept the whole message
        )
    )


def open_socket(netns: str | None, *, events: bool, rcvbuf: int = 0) -> socket.socket:
    """A non-blocking rtnetlink socket in `netns`: filtered and subscribed if `events`.

    With a namespace name pyroute2 forks a short-lived child that opens the
    socket there and passes it back, so the calling process never changes
    namespace (a few milliseconds, only taken by tests and tools).
    """
    if netns is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    else:
        from pyroute2.netns import create_socket  # noqa: PLC0415 - 10 ms the daemon never needs

        sock = create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        if events:
            code = route_filter()
            # struct sock_fprog points at the program; the kernel copies it during the call.
            # array gives the address without ctypes (1 ms and libffi at every start).
            program = array.array("B", code)
            fprog = struct.pack("HL", len(code) // 8, program.buffer_info()[0])
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        else:
            sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, GROUPS if events else 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RtnlWatcher:
    """Keeps a `NetState` in step with the kernel and reports coalesced snapshots.

    `on_change` is called from the event loop with the new state after a
    burst of notifications (one reader wake-up) or a resync changed it, at
    most once per burst and never for the initial dump: read `state` after
    `start()`.
    """

    def __init__(
        self,
        on_change: Callable[[NetState], None],
        *,
        netns: str | None = None,
        rcvbuf: int = DEFAULT_RCVBUF,
        timeout: float = 30.0,
    ) -> None:
        self._on_change = on_change
        self._netns = netns
        self._rcvbuf = rcvbuf
        self._timeout = timeout
        self._events: socket.socket | None = None
        self._buffer = bytearray(RECV_BUFFER)
        self._state = NetState()
        self._published = NetState()
        self._pending: list[bytes] | None = None  # notifications held back during a dump
        self._overrun = False
        self._publish_scheduled = False
        self._resync_task: asyncio.Task[None] | None = None
        self.resyncs = 0
        """How often the state was rebuilt from fresh sockets after `start()`."""
        self.route_notifications = 0
        """Route notifications that got past the socket filter into this process."""
        self._unfrozen = 0  # messages folded since the last gc.freeze()

    @property
    def state(self) -> NetState:
        return self._state

    async def start(self) -> None:
        """Subscribe, dump, and return once the initial state is known."""
        await self._sync()
        self._published = self._state

    def request_resync(self) -> None:
        """Rebuild the state from new sockets: what ENOBUFS triggers, callable by tests."""
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.get_running_loop().create_task(self._resync())

    async def wait_resynced(self) -> None:
        """Return once a running resync (if any) has finished."""
        if self._resync_task is not None:
            await asyncio.wait_for(asyncio.shield(self._resync_task), self._timeout * 2)

    async def close(self) -> None:
        if self._resync_task is not None:
            self._resync_task.cancel()
            await asyncio.gather(self._resync_task, return_exceptions=True)
        self._close_events()

    async def _resync(self) -> None:
        try:
            await self._sync()
        except Failed as error:
            log.error("rtnetlink resync failed, retrying in 1 s: %s", error)
            asyncio.get_running_loop().call_later(1.0, self.request_resync)
            return
        self.resyncs += 1
        self._schedule_publish()

    async def _sync(self) -> None:
        """Subscribe a new event socket, dump, and replace the state wholesale."""
        loop = asyncio.get_running_loop()
        for attempt in range(1, SYNC_ATTEMPTS + 1):
            self._close_events()
            self._pending, self._overrun = [], False
            try:
                self._events = open_socket(self._netns, events=True, rcvbuf=self._rcvbuf)
                loop.add_reader(self._events.fileno(), self._on_events, self._events)
                state = await asyncio.wait_for(self._dump(), self._timeout)
            except TimeoutError as error:
                self._close_events()
                raise Failed(f"rtnetlink dump did not finish within {self._timeout} s") from error
            except OSError as error:
                self._close_events()
                raise Failed(f"rtnetlink dump failed: {error.strerror}") from error
            if not self._overrun:
                state = await self._replay_pending(state)
            if self._overrun:
                log.warning("rtnetlink overrun during dump (attempt %d), dumping again", attempt)
                continue
            self._state, self._pending = state, None
            self._keep_out_of_gc(FREEZE_AFTER)
            return
        self._pending = None
        raise Failed(f"rtnetlink notifications overran {SYNC_ATTEMPTS} dumps in a row")

    async def _replay_pending(self, state: NetState) -> NetState:
        """Fold the notifications queued during the dump, yielding between time slices.

        More may queue while this runs; the loop takes them too, until none is left.
        """
        pending = self._pending if self._pending is not None else []
        deadline = time.monotonic() + TIME_SLICE
        done = 0
        while done < len(pending) and not self._overrun:
            raw = pending[done]
            done += 1
            _, msg_type, flags, _, _ = NLMSGHDR.unpack_from(raw)
            state = fold(state, msg_type, flags, raw)
            if time.monotonic() > deadline:
                await asyncio.sleep(0)
                deadline = time.monotonic() + TIME_SLICE
        return state

    async def _dump(self) -> NetState:
        loop = asyncio.get_running_loop()
        sock = open_socket(self._netns, events=False)
        dump = Dump(sock, loop.create_future())
        loop.add_reader(sock.fileno(), dump.on_readable)
        try:
            dump.send_next()
            return await dump.done
        finally:
            dump.cancel()
            loop.remove_reader(sock.fileno())
            sock.close()

    def _close_events(self) -> None:
        if self._events is not None:
            asyncio.get_running_loop().remove_reader(self._events.fileno())
            self._events.close()
            self._events = None

    def _on_events(self, sock: socket.socket) -> None:
        buffer = self._buffer
        deadline = time.monotonic() + TIME_SLICE
        for _ in range(MAX_READS_PER_WAKEUP):
            if time.monotonic() > deadline:
                break  # the socket stays readable: the loop calls again after other work
            try:
                size = sock.recv_into(buffer, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError as error:
                self._lost(f"receive failed: {error.strerror}")
                return
            if size > len(buffer):
                self._lost(f"a {size}-byte notification did not fit the buffer")
                return
            data = memoryview(buffer)[:size]
            for msg_type, flags, _, offset, length in messages(data):
                raw = bytes(data[offset : offset + length])
                if msg_type in ROUTE_TYPES:
                    self.route_notifications += 1
                if self._pending is not None:
                    self._pending.append(raw)
                else:
                    self._state = fold(self._state, msg_type, flags, raw)
                    self._unfrozen += 1
        if self._pending is None:
            self._keep_out_of_gc(self._unfrozen)
            self._schedule_publish()

    def _keep_out_of_gc(self, unfrozen: int) -> None:
        """Freeze once enough was folded since the last time (see `freeze_state`)."""
        if unfrozen >= FREEZE_AFTER:
            freeze_state()
            self._unfrozen = 0

    def _lost(self, why: str) -> None:
        """Notifications were lost (ENOBUFS, mostly): start over from a dump."""
        self._close_events()
        if self._pending is not None:
            self._overrun = True
        else:
            log.warning("rtnetlink notifications lost (%s), resyncing", why)
            self.request_resync()

    def _schedule_publish(self) -> None:
        # Identity, not equality: the reducers return the same state when nothing changed,
        # and comparing two states would cost O(n) per burst.
        if not self._publish_scheduled and self._state is not self._published:
            self._publish_scheduled = True
            asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._publish_scheduled = False
        if self._state is self._published:
            return
        self._published = self._state
        try:
            self._on_change(self._state)
        except Exception:
            log.exception("rtnetlink state consumer failed")
