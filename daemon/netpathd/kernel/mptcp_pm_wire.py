"""The mptcp_pm messages of the hot path, in and out with ``struct`` instead of pyroute2.

pyroute2's nla classes spend about 70 µs decoding each endpoint of a dump and
about 100 µs encoding one ADD_ADDR (measured here; the kernel answers either in
a few µs), and every automatic endpoint costs an add and a share of two dumps,
so they were most of a round's netlink cost.  The layout is small and fixed
(include/uapi/linux/mptcp_pm.h; dumps filled by ``mptcp_nl_fill_addr()``, adds
parsed by ``mptcp_pm_parse_entry()`` in net/mptcp/pm_netlink.c): one nested
``MPTCP_PM_ATTR_ADDR`` holding family (u16), id (u8), ADDR4 (4 bytes, network
order), ADDR6 (16 bytes), port (u16, host order), flags (u32) and ifindex
(s32).  ``tests/unit/test_mptcp_pm_wire.py`` checks both directions against
pyroute2's.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable

from netpathd.model.mptcp import Endpoint, flags_from_word, flags_to_word

MPTCP_PM_ATTR_ADDR = 1
_ADDR_ATTR_ID, _ADDR_ATTR_ADDR4, _ADDR_ATTR_ADDR6 = 2, 3, 4
_ADDR_ATTR_PORT, _ADDR_ATTR_FLAGS, _ADDR_ATTR_IF_IDX = 5, 6, 7
_ADDR_ATTR_FAMILY = 1
_NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
_GENL_VERSION = 1
_GENL_HEADER = 16 + 4  # struct nlmsghdr, struct genlmsghdr
_ATTR = struct.Struct("=HH")
_U8, _U16 = struct.Struct("=B"), struct.Struct("=H")
_U32, _S32 = struct.Struct("=I"), struct.Struct("=i")


def _nla(kind: int, payload: bytes) -> bytes:
    return _ATTR.pack(_ATTR.size + len(payload), kind) + payload + bytes(-len(payload) % 4)


def add_addr_body(command: int, endpoint: Endpoint, ifindex: int) -> bytes:
    """genlmsghdr and attributes of an ADD_ADDR for ``endpoint`` bound to ``ifindex`` (0: none).

    Id 0 sends no id attribute: an ID attribute, even 0, stops the kernel from
    allocating one (``mptcp_pm_has_addr_attr_id()``).
    """
    if endpoint.address.version == 4:
        addr = _nla(_ADDR_ATTR_FAMILY, _U16.pack(socket.AF_INET))
        addr += _nla(_ADDR_ATTR_ADDR4, endpoint.address.packed)
    else:
        addr = _nla(_ADDR_ATTR_FAMILY, _U16.pack(socket.AF_INET6))
        addr += _nla(_ADDR_ATTR_ADDR6, endpoint.address.packed)
    addr += _nla(_ADDR_ATTR_FLAGS, _U32.pack(flags_to_word(endpoint.flags)))
    if endpoint.id:
        addr += _nla(_ADDR_ATTR_ID, _U8.pack(endpoint.id))
    if endpoint.port:
        addr += _nla(_ADDR_ATTR_PORT, _U16.pack(endpoint.port))
    if ifindex:
        addr += _nla(_ADDR_ATTR_IF_IDX, _S32.pack(ifindex))
    header = struct.pack("=BBH", command, _GENL_VERSION, 0)
    return header + _nla(MPTCP_PM_ATTR_ADDR | _NLA_F_NESTED, addr)


def _attrs(data: bytes, start: int, end: int) -> Iterable[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in ``data[start:end]``."""
    offset = start
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > end:
            return
        yield kind & _NLA_TYPE_MASK, offset + _ATTR.size, offset + length
        offset += (length + 3) & ~3


def endpoints_from_dump(
    answers: Iterable[bytes], command: int, interface_name: Callable[[int], str]
) -> list[Endpoint]:
    """The endpoints in the messages of ``command``; others (and empty ones) are skipped.

    ``interface_name`` maps an ifindex to its name ("" when unknown).
    """
    endpoints: list[Endpoint] = []
    for message in answers:
        if len(message) < _GENL_HEADER or message[16] != command:
            continue
        for kind, start, end in _attrs(message, _GENL_HEADER, len(message)):
            if kind == MPTCP_PM_ATTR_ADDR:
                endpoint = _endpoint(message, start, end, interface_name)
                if endpoint is not None:
                    endpoints.append(endpoint)
    return endpoints


def _endpoint(
    data: bytes, start: int, end: int, interface_name: Callable[[int], str]
) -> Endpoint | None:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    endpoint_id = port = word = ifindex = 0
    for kind, payload, stop in _attrs(data, start, end):
        size = stop - payload
        if kind == _ADDR_ATTR_ADDR4 and size >= 4:
            address = ipaddress.IPv4Address(data[payload : payload + 4])
        elif kind == _ADDR_ATTR_ADDR6 and size >= 16:
            address = ipaddress.IPv6Address(data[payload : payload + 16])
        elif kind == _ADDR_ATTR_ID and size >= 1:
            (endpoint_id,) = _U8.unpack_from(data, payload)
        elif kind == _ADDR_ATTR_PORT and size >= 2:
            (port,) = _U16.unpack_from(data, payload)
        elif kind == _ADDR_ATTR_FLAGS and size >= 4:
            (word,) = _U32.unpack_from(data, payload)
        elif kind == _ADDR_ATTR_IF_IDX and size >= 4:
            (ifindex,) = _S32.unpack_from(data, payload)
    if address is None:
        return None
    return Endpoint(
        id=endpoint_id,
        address=address,
        port=port,
        interface=interface_name(ifindex) if ifindex else "",
        ifindex=ifindex,
        flags=flags_from_word(word),
    )
