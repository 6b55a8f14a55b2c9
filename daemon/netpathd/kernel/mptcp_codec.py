"""The endpoint messages of the "mptcp_pm" family, packed and unpacked with ``struct``.

pyroute2's nla classes take about 60 µs to encode an ADD_ADDR and as long again to
decode each endpoint of a GET_ADDR dump (measured here), where the kernel answers the
whole add in about 25 µs (``bench/bench_mptcp_bus.py``): most of an ``AddEndpoint``.
These are the messages of every endpoint call, so they are laid out here from the uapi
(``include/uapi/linux/mptcp_pm.h``, ``struct genlmsghdr``, ``struct nlattr``);
pyroute2 keeps the rare ones (limits, flags, flush, events).  The unit tests
check every layout byte for byte against pyroute2's ``pm_msg``.

A body is what follows the ``nlmsghdr``: the genetlink header, then attributes.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Iterator

from netpathd.model.mptcp import Endpoint, IPAddress, flags_from_word, flags_to_word

InterfaceName = Callable[[int], str]

# enum mptcp_pm_command
CMD_ADD_ADDR, CMD_DEL_ADDR, CMD_GET_ADDR = 1, 2, 3
MPTCP_PM_VER = 1
# enum mptcp_pm_attrs / mptcp_pm_addr_attrs
_ATTR_ADDR = 1
_ADDR_FAMILY, _ADDR_ID, _ADDR_ADDR4, _ADDR_ADDR6, _ADDR_PORT, _ADDR_FLAGS, _ADDR_IF_IDX = range(
    1, 8
)
_NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_NLMSG_HEADER = 16
_GENL = struct.Struct("=BBH")  # struct genlmsghdr: cmd, version, reserved
_NLA = struct.Struct("=HH")  # struct nlattr: length, type
_U8, _U16, _U32, _S32 = (struct.Struct(f) for f in ("=B", "=H", "=I", "=i"))


def _attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes as the kernel's nla_put does."""
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + bytes(-length % 4)


def _body(cmd: int, addr: list[bytes]) -> bytes:
    nested = b"".join(addr)
    return _GENL.pack(cmd, MPTCP_PM_VER, 0) + _attr(_ATTR_ADDR | _NLA_F_NESTED, nested)


def add_addr(endpoint: Endpoint, ifindex: int) -> bytes:
    """ADD_ADDR for ``endpoint`` bound to ``ifindex`` (0: any device).

    No ID attribute for id 0: an ID attribute, even 0, stops the kernel from
    choosing one (``mptcp_pm_has_addr_attr_id``).
    """
    if endpoint.address.version == 4:
        addr = [_attr(_ADDR_FAMILY, _U16.pack(socket.AF_INET))]
        addr.append(_attr(_ADDR_ADDR4, endpoint.address.packed))
    else:
        addr = [_attr(_ADDR_FAMILY, _U16.pack(socket.AF_INET6))]
        addr.append(_attr(_ADDR_ADDR6, endpoint.address.packed))
    addr.append(_attr(_ADDR_FLAGS, _U32.pack(flags_to_word(endpoint.flags))))
    if endpoint.id:
        addr.append(_attr(_ADDR_ID, _U8.pack(endpoint.id)))
    if endpoint.port:
        addr.append(_attr(_ADDR_PORT, _U16.pack(endpoint.port)))  # host order, as nla_get_u16
    if ifindex:
        addr.append(_attr(_ADDR_IF_IDX, _S32.pack(ifindex)))
    return _body(CMD_ADD_ADDR, addr)


def del_addr(endpoint_id: int) -> bytes:
    return _body(CMD_DEL_ADDR, [_attr(_ADDR_ID, _U8.pack(endpoint_id))])


def get_addr_dump() -> bytes:
    """GET_ADDR without attributes: sent as a dump, the whole table."""
    return _GENL.pack(CMD_GET_ADDR, MPTCP_PM_VER, 0)


def _attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + _NLA.size <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size or offset + length > end:
            return
        yield kind & _NLA_TYPE_MASK, data[offset + _NLA.size : offset + length]
        offset += (length + 3) & ~3


def _endpoint(addr: bytes, interface_name: InterfaceName) -> Endpoint:
    values = dict(_attrs(addr, 0, len(addr)))
    address: IPAddress
    if _ADDR_ADDR4 in values:
        address = ipaddress.IPv4Address(values[_ADDR_ADDR4])
    else:
        address = ipaddress.IPv6Address(values[_ADDR_ADDR6])
    ifindex = _S32.unpack(values[_ADDR_IF_IDX])[0] if _ADDR_IF_IDX in values else 0
    return Endpoint(
        id=values[_ADDR_ID][0] if _ADDR_ID in values else 0,
        address=address,
        port=_U16.unpack(values[_ADDR_PORT])[0] if _ADDR_PORT in values else 0,
        interface=interface_name(ifindex),
        ifindex=ifindex,
        flags=flags_from_word(_U32.unpack(values[_ADDR_FLAGS])[0] if _ADDR_FLAGS in values else 0),
    )


def endpoints(replies: Iterable[bytes], interface_name: InterfaceName) -> list[Endpoint]:
    """The endpoints in the raw answers to ``get_addr_dump()`` (nlmsghdr included).

    ``interface_name`` turns an ifindex into its name ("" for 0 or a gone link).
    """
    table = []
    for message in replies:
        if len(message) < _NLMSG_HEADER + _GENL.size or message[_NLMSG_HEADER] != CMD_GET_ADDR:
            continue
        for kind, payload in _attrs(message, _NLMSG_HEADER + _GENL.size, len(message)):
            if kind == _ATTR_ADDR:
                table.append(_endpoint(payload, interface_name))
    return table
