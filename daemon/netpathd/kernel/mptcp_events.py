"""MPTCP connection events: the ``mptcp_pm_events`` group of the "mptcp_pm" genetlink family.

What ``ip mptcp monitor`` shows, as ``MptcpEvent`` values.  Endpoint and
limit changes are *not* announced by the kernel (measured on 6.18); only
connection, subflow and PM listener events are.  Like ``mptcp_pm`` this acts
on the current network namespace and keeps pyroute2's ``Any`` inside.

The subscription is a plain non-blocking socket read with ``loop.sock_recv``, and
pyroute2 only decodes (``genlmsg``, ``ctrlmsg``): its ``AsyncGenericNetlinkSocket``
brought pyroute2's whole socket layer (``nlsocket``: multiprocessing, pickle, json), about
6 ms and 3 MiB, into every start, since the daemon subscribes before it takes its name.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import logging
import socket
import struct
from typing import Any

from pyroute2.netlink import CTRL_CMD_GETFAMILY, GENL_ID_CTRL, ctrlmsg, genlmsg
from pyroute2.netlink.exceptions import NetlinkDecodeError, NetlinkError

from netpathd.errors import Failed
from netpathd.kernel.genl_transport import GenlTransport
from netpathd.kernel.mptcp_pm import MPTCP_GENL_NAME

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
DEFAULT_RCVBUF = 1 << 20
EVENTS_GROUP = "mptcp_pm_events"
_NETLINK_GENERIC = 16
_SOL_NETLINK = 270
_NETLINK_ADD_MEMBERSHIP = 1
_RECEIVE_SIZE = 65536
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr

EVENT_KINDS = {
    1: "created",
    2: "established",
    3: "closed",
    6: "announced",
    7: "removed",
    10: "sub_established",
    11: "sub_closed",
    13: "sub_priority",
    15: "listener_created",
    16: "listener_closed",
}
"""``enum mptcp_event_type`` (include/uapi/linux/mptcp_pm.h), named as ``ip mptcp monitor`` does."""

OVERRUN = "overrun"
"""Synthetic kind: the kernel dropped events (ENOBUFS); re-read whatever state depends on them."""

_BOOLEAN_DETAILS = frozenset({"backup", "server_side"})


class event_msg(genlmsg):  # type: ignore[misc]  # noqa: N801
    """``enum mptcp_event_attr``: events reuse the family id but not the command attributes."""

    prefix = "MPTCP_ATTR_"
    nla_map = (
        ("MPTCP_ATTR_UNSPEC", "none"),
        ("MPTCP_ATTR_TOKEN", "uint32"),
        ("MPTCP_ATTR_FAMILY", "uint16"),
        ("MPTCP_ATTR_LOC_ID", "uint8"),
        ("MPTCP_ATTR_REM_ID", "uint8"),
        ("MPTCP_ATTR_SADDR4", "ip4addr"),
        ("MPTCP_ATTR_SADDR6", "ip6addr"),
        ("MPTCP_ATTR_DADDR4", "ip4addr"),
        ("MPTCP_ATTR_DADDR6", "ip6addr"),
        ("MPTCP_ATTR_SPORT", "be16"),
        ("MPTCP_ATTR_DPORT", "be16"),
        ("MPTCP_ATTR_BACKUP", "uint8"),
        ("MPTCP_ATTR_ERROR", "uint8"),
        ("MPTCP_ATTR_FLAGS", "uint16"),
        ("MPTCP_ATTR_TIMEOUT", "uint32"),
        ("MPTCP_ATTR_IF_IDX", "int32"),
        ("MPTCP_ATTR_RESET_REASON", "uint32"),
        ("MPTCP_ATTR_RESET_FLAGS", "uint32"),
        ("MPTCP_ATTR_SERVER_SIDE", "uint8"),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MptcpEvent:
    """One ``mptcp_pm_events`` message: ``kind`` from EVENT_KINDS (or OVERRUN) and the
    attributes the kernel sent, keyed like ``MPTCP_ATTR_*`` in lower case
    (token, family, saddr4, dport, loc_id, backup, if_idx, reset_reason, ...)."""

    kind: str
    details: dict[str, bool | int | str]


def _event_from_msg(msg: Any) -> MptcpEvent | None:
    kind = EVENT_KINDS.get(msg["cmd"])
    if kind is None:
        log.debug("ignoring unknown MPTCP event type %s", msg["cmd"])
        return None
    details: dict[str, bool | int | str] = {}
    for name, value in msg["attrs"]:
        key = name.removeprefix("MPTCP_ATTR_").lower()
        if key == "unspec":
            continue
        details[key] = bool(value) if key in _BOOLEAN_DETAILS else value
    return MptcpEvent(kind, details)


async def _family_and_group() -> tuple[int, int]:
    """The family id of "mptcp_pm" and the id of its events group, asked of the controller."""
    request = ctrlmsg()
    request["cmd"] = CTRL_CMD_GETFAMILY
    request["version"] = 1
    request["attrs"] = [("CTRL_ATTR_FAMILY_NAME", MPTCP_GENL_NAME)]
    transport = GenlTransport()
    try:
        (reply, *_) = await asyncio.wait_for(
            transport.request(request, GENL_ID_CTRL), SUBSCRIBE_TIMEOUT
        )
    finally:
        transport.close()
    answer: Any = ctrlmsg(reply)
    answer.decode()
    for group in answer.get_attr("CTRL_ATTR_MCAST_GROUPS") or ():
        if group.get_attr("CTRL_ATTR_MCAST_GRP_NAME") == EVENTS_GROUP:
            family = int(answer.get_attr("CTRL_ATTR_FAMILY_ID"))
            return family, int(group.get_attr("CTRL_ATTR_MCAST_GRP_ID"))
    raise NetlinkError(errno.ENOENT, f"{MPTCP_GENL_NAME} has no {EVENTS_GROUP} group")


def _subscribed(group: int, rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_GENERIC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, 0))
        sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, group)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MptcpEvents:
    """Async iterator over the namespace's MPTCP connection events.

    ``async with MptcpEvents() as events: async for event in events: ...``.
    The subscription exists once ``__aenter__`` returns, so a caller can
    subscribe first and read state second without a gap.  It uses its own
    socket; on overrun (ENOBUFS) the socket is replaced and an ``OVERRUN``
    event tells the consumer that events were lost.  The socket is read
    whenever the consumer waits, so an overrun means the loop itself was
    starved (measured: a 4 KiB ``rcvbuf`` and a loop blocked for 3 s while 200
    connections come and go).  Needs CAP_NET_ADMIN (the group is
    ``GENL_MCAST_CAP_NET_ADMIN`` in net/mptcp/pm_netlink.c).
    """

    def __init__(self, rcvbuf: int = DEFAULT_RCVBUF) -> None:
        self._rcvbuf = rcvbuf
        self._sock: socket.socket | None = None
        self._family = 0
        self._pending: collections.deque[MptcpEvent] = collections.deque()

    async def __aenter__(self) -> MptcpEvents:
        await self._subscribe()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _subscribe(self) -> None:
        try:
            self._family, group = await _family_and_group()
            self._sock = _subscribed(group, self._rcvbuf)
        except (NetlinkError, OSError) as error:
            raise Failed(
                f"cannot subscribe to MPTCP events (needs CAP_NET_ADMIN): {error}"
            ) from None

    def __aiter__(self) -> MptcpEvents:
        return self

    async def __anext__(self) -> MptcpEvent:
        while not self._pending:
            await self._receive()
        return self._pending.popleft()

    async def _receive(self) -> None:
        if self._sock is None:
            raise StopAsyncIteration
        try:
            data = await asyncio.get_running_loop().sock_recv(self._sock, _RECEIVE_SIZE)
        except OSError as error:
            if error.errno != errno.ENOBUFS:
                raise Failed(f"MPTCP event socket failed: {error}") from None
            log.warning("MPTCP events overran the socket buffer; resubscribing")
            self.close()
            await self._subscribe()
            self._pending.append(MptcpEvent(OVERRUN, {}))
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind = _HEADER.unpack_from(data, offset)[:2]
            if length < _HEADER.size:
                break
            if kind == self._family:  # not NLMSG_NOOP/ERROR/DONE
                self._decode(data[offset : offset + length])
            offset += (length + 3) & ~3

    def _decode(self, raw: bytes) -> None:
        try:
            msg = event_msg(raw)
            msg.decode()
            event = _event_from_msg(msg)
        except (NetlinkDecodeError, KeyError, TypeError, ValueError) as error:
            log.warning("skipping undecodable MPTCP event: %s", error)
            return
        if event is not None:
            self._pending.append(event)
