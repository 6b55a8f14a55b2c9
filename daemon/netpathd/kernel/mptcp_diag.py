"""Live MPTCP connections of the current namespace with their TCP subflows, via sock_diag.

This is the guide's verification (``ss -nti`` / ``ss -M``) as data.  Two
one-shot dumps per address family on a NETLINK_SOCK_DIAG socket:

* IPPROTO_MPTCP sockets (net/mptcp/mptcp_diag.c): ``INET_DIAG_INFO`` carries
  ``struct mptcp_info`` (include/uapi/linux/mptcp.h).  262 does not fit the
  u8 ``sdiag_protocol``; like ``ss`` we send ``INET_DIAG_REQ_PROTOCOL`` (u32)
  and let the low byte (6) stand in the header.
* TCP sockets whose ``INET_DIAG_ULP_INFO`` names the "mptcp" ULP: the
  subflows (net/mptcp/diag.c ``subflow_get_info``) with their local token,
  which equals the connection's ``mptcpi_token``.

pyroute2's DiagSocket is synchronous and decodes INET_DIAG_INFO as tcp_info
only, so this module speaks the small protocol itself with ``struct`` on a
non-blocking socket driven by the event loop.  A dump of one namespace's
sockets is served from kernel memory and is fast; a timeout still bounds it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from netpathd.errors import Failed, NotSupported

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DUMP_TIMEOUT = 5.0
IPPROTO_MPTCP = 262

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_INET_DIAG_INFO = 2
_INET_DIAG_ULP_INFO = 19
_INET_DIAG_REQ_PROTOCOL = 3
_INET_ULP_INFO_NAME = 1
_INET_ULP_INFO_MPTCP = 3
_TCPF_LISTEN = 1 << 10
_ALL_BUT_LISTEN = ((1 << 12) - 1) & ~_TCPF_LISTEN

_NLMSGHDR = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")
# struct inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid
_REQ = struct.Struct("=BBBxI HH16s16sI8s")
# struct inet_diag_msg: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
_MSG = struct.Struct("=BBBB HH16s16sI8s IIIII")
# struct mptcp_info of 6.18 with its two holes; older kernels send a prefix
_MPTCP_INFO = struct.Struct("=6B2xIIQQQ3BxIQQQQ4BIII")

TCP_STATES = (
    "unknown", "established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2",
    "time-wait", "close", "close-wait", "last-ack", "listen", "closing",
)  # fmt: skip

MPTCP_SUBFLOW_FLAG_BKUP_REM = 1 << 4
MPTCP_SUBFLOW_FLAG_BKUP_LOC = 1 << 5
MPTCP_SUBFLOW_FLAG_FULLY_ESTABLISHED = 1 << 6


@dataclass(frozen=True, slots=True)
class Subflow:
    """One TCP subflow (``ss -nti`` with ``tcp-ulp-mptcp``)."""

    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    state: str
    token_local: int
    token_remote: int
    local_id: int
    remote_id: int
    flags: int  # MPTCP_SUBFLOW_FLAG_*: what ss prints as "flags:Mmec"
    backup: bool  # either side asked for backup priority (BKUP_LOC or BKUP_REM)
    bytes_sent: int
    bytes_received: int
    bytes_acked: int


@dataclass(frozen=True, slots=True)
class MptcpConnection:
    """One MPTCP socket (``ss -M``) and the subflows that carry it."""

    token: int
    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    state: str
    extra_subflows: int  # mptcpi_subflows: subflows beyond the initial one
    add_addr_signal: int
    add_addr_accepted: int
    local_addr_used: int
    local_addr_max: int
    flags: int  # MPTCP_INFO_FLAG_*: fallback, remote key received
    bytes_sent: int  # zero on kernels before 6.7, which lack the counters
    bytes_received: int
    bytes_acked: int
    subflows: tuple[Subflow, ...]
    inode: int = 0  # idiag_inode: matches /proc/PID/fd/N -> socket:[inode] (sockets_owner.py)


@dataclass(frozen=True, slots=True)
class _Socket:
    family: int
    state: int
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int
    attrs: dict[int, bytes]
    inode: int = 0


async def list_connections() -> list[MptcpConnection]:
    """Every non-listening MPTCP connection of the current namespace, with its subflows."""
    msks: list[_Socket] = []
    tcps: list[_Socket] = []
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, _NETLINK_SOCK_DIAG
    ) as sock:
        sock.bind((0, 0))
        for family in (socket.AF_INET, socket.AF_INET6):
            msks += await asyncio.wait_for(_dump(sock, family, IPPROTO_MPTCP), DUMP_TIMEOUT)
            tcps += await asyncio.wait_for(_dump(sock, family, socket.IPPROTO_TCP), DUMP_TIMEOUT)
    subflows: dict[int, list[Subflow]] = {}
    for tcp in tcps:
        subflow = _subflow(tcp)
        if subflow is not None:
            subflows.setdefault(subflow.token_local, []).append(subflow)
    connections = []
    for msk in msks:
        info = msk.attrs.get(_INET_DIAG_INFO)
        if info is None:
            continue
        connections.append(_connection(msk, info, tuple(subflows.get(_token(info), ()))))
    return connections


def _token(info: bytes) -> int:
    token: int = _MPTCP_INFO.unpack(info.ljust(_MPTCP_INFO.size, b"\0")[: _MPTCP_INFO.size])[7]
    return token


def _connection(msk: _Socket, info: bytes, subflows: tuple[Subflow, ...]) -> MptcpConnection:
    (
        extra_subflows, add_addr_signal, add_addr_accepted, _subflows_max, _signal_max,
        _accepted_max, flags, token, _write_seq, _snd_una, _rcv_nxt, local_addr_used,
        local_addr_max, _csum, _retransmits, _bytes_retrans, bytes_sent, bytes_received,
        bytes_acked, *_rest,
    ) = _MPTCP_INFO.unpack(info.ljust(_MPTCP_INFO.size, b"\0")[: _MPTCP_INFO.size])  # fmt: skip
    return MptcpConnection(
        token=token,
        local_address=msk.src,
        local_port=msk.sport,
        remote_address=msk.dst,
        remote_port=msk.dport,
        state=_state_name(msk.state),
        extra_subflows=extra_subflows,
        add_addr_signal=add_addr_signal,
        add_addr_accepted=add_addr_accepted,
        local_addr_used=local_addr_used,
        local_addr_max=local_addr_max,
        flags=flags,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        bytes_acked=bytes_acked,
        subflows=subflows,
        inode=msk.inode,
    )


def _subflow(tcp: _Socket) -> Subflow | None:
    ulp = dict(_attrs(tcp.attrs.get(_INET_DIAG_ULP_INFO, b"")))
    if ulp.get(_INET_ULP_INFO_NAME, b"").rstrip(b"\0") != b"mptcp":
        return None
    if _INET_ULP_INFO_MPTCP not in ulp:
        return None
    sf = dict(_attrs(ulp[_INET_ULP_INFO_MPTCP]))

    def u(attr: int) -> int:
        value = sf.get(attr, b"")
        return int.from_bytes(value, "little") if value else 0

    flags = u(8)  # MPTCP_SUBFLOW_ATTR_FLAGS
    bytes_acked = bytes_received = bytes_sent = 0
    tcp_info = tcp.attrs.get(_INET_DIAG_INFO, b"")
    if len(tcp_info) >= 136:  # tcpi_bytes_acked/received at 120/128 (since 4.1/4.2)
        bytes_acked, bytes_received = struct.unpack_from("=QQ", tcp_info, 120)
    if len(tcp_info) >= 208:  # tcpi_bytes_sent at 200 (since 5.0)
        (bytes_sent,) = struct.unpack_from("=Q", tcp_info, 200)
    return Subflow(
        local_address=tcp.src,
        local_port=tcp.sport,
        remote_address=tcp.dst,
        remote_port=tcp.dport,
        state=_state_name(tcp.state),
        token_remote=u(1),  # MPTCP_SUBFLOW_ATTR_TOKEN_REM
        token_local=u(2),  # MPTCP_SUBFLOW_ATTR_TOKEN_LOC
        remote_id=u(9),  # MPTCP_SUBFLOW_ATTR_ID_REM
        local_id=u(10),  # MPTCP_SUBFLOW_ATTR_ID_LOC
        flags=flags,
        backup=bool(flags & (MPTCP_SUBFLOW_FLAG_BKUP_LOC | MPTCP_SUBFLOW_FLAG_BKUP_REM)),
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        bytes_acked=bytes_acked,
    )


def _state_name(state: int) -> str:
    return TCP_STATES[state] if state < len(TCP_STATES) else str(state)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Netlink attributes (type without NLA_F_NESTED, payload) of ``data``."""
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            return
        yield kind & 0x3FFF, data[offset + _NLATTR.size : offset + length]
        offset += (length + 3) & ~3


def _address(family: int, raw: bytes) -> IPAddress:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[:4])
    address = ipaddress.IPv6Address(raw)
    return address.ipv4_mapped or address


async def _dump(sock: socket.socket, family: int, protocol: int) -> list[_Socket]:
    loop = asyncio.get_running_loop()
    ext = 1 << (_INET_DIAG_INFO - 1)
    body = _REQ.pack(family, protocol & 0xFF, ext, _ALL_BUT_LISTEN, 0, 0, b"", b"", 0, b"")
    body += _NLATTR.pack(_NLATTR.size + 4, _INET_DIAG_REQ_PROTOCOL) + struct.pack("=I", protocol)
    seq = int.from_bytes(os.urandom(4), "little")
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0
    )
    await loop.sock_sendall(sock, header + body)
    sockets: list[_Socket] = []
    while True:
        data = await loop.sock_recv(sock, 1 << 16)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            payload = data[offset + _NLMSGHDR.size : offset + length]
            offset += (length + 3) & ~3
            if msg_seq != seq:
                continue
            if kind == _NLMSG_DONE:
                return sockets
            if kind == _NLMSG_ERROR:
                _raise_dump_error(-struct.unpack_from("=i", payload)[0], protocol)
            if kind == _SOCK_DIAG_BY_FAMILY and len(payload) >= _MSG.size:
                sockets.append(_parse(payload))


def _parse(payload: bytes) -> _Socket:
    fam, state, _timer, _retrans, sport, dport, src, dst, *_rest, inode = _MSG.unpack_from(payload)
    attrs = dict(_attrs(payload[_MSG.size :]))
    return _Socket(
        fam, state, _address(fam, src), socket.ntohs(sport), _address(fam, dst),
        socket.ntohs(dport), attrs, inode,
    )  # fmt: skip


def _raise_dump_error(code: int, protocol: int) -> NoReturn:
    if code == errno.ENOENT and protocol == IPPROTO_MPTCP:
        raise NotSupported("the kernel cannot list MPTCP sockets (CONFIG_INET_MPTCP_DIAG)")
    raise Failed(f"socket dump for protocol {protocol} failed: {os.strerror(code)}")
