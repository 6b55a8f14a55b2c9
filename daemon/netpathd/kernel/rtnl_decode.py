"""Decoding the few rtnetlink messages that get past the watcher's cheap checks.

Links, addresses and main-table default routes become `model.netstate`
events; everything else decodes to no event at all.  Addresses and
single-path routes, the messages that come by the hundred thousand in a flood
or a dump, are read with `struct` (about 5 us each instead of pyroute2's
20-35 us, which made a 100,000-route resync take seconds).  Links are too:
three fields and the name, where pyroute2's `ifinfmsg` cost the daemon's
start-up 9 ms and 4 MiB of imports (its link-kind plugins pull in
multiprocessing and pickle).  Multipath routes and routes via another family,
rare, keep pyroute2's `rtmsg`, imported when the first one comes.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

from netpathd.model import netstate
from netpathd.model.links import Address, DefaultRoute, Family, IPAddress, Link

NLM_F_REPLACE = 0x100
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTM_F_CLONED = 0x200
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000  # carrier (netif_carrier_ok()), as `ip link` shows LOWER_UP
RTNH_F_LINKDOWN = 0x10  # next hop's link has no carrier; single-path routes carry it in rtm_flags
IFA_F_TENTATIVE = 0x40

ROUTE_TYPES = frozenset((RTM_NEWROUTE, RTM_DELROUTE))
_FAMILIES = {socket.AF_INET: Family.IPV4, socket.AF_INET6: Family.IPV6}

IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFLA_IFNAME = 3
IFLA_LINKINFO, IFLA_INFO_KIND = 18, 1  # the kind of a link made through rtnl_link_ops
RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE, RTA_VIA = 4, 5, 6, 9, 15, 18
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_HEADER = 16  # struct nlmsghdr
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope,
#                                       type, flags
_RTATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def _attributes(raw: bytes, offset: int) -> dict[int, bytes]:
    """The payload of each top-level attribute (struct rtattr) from `offset` on."""
    found: dict[int, bytes] = {}
    end = len(raw)
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(raw, offset)
        if length < _RTATTR.size or offset + length > end:
            raise ValueError(f"malformed attribute (length {length})")
        found[kind & NLA_TYPE_MASK] = raw[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def _u32(payload: bytes | None, default: int = 0) -> int:
    return default if payload is None else int(_U32.unpack(payload)[0])


def _ip(value: Any) -> IPAddress:
    return ipaddress.ip_address(str(value))


def _link_events(msg_type: int, raw: bytes) -> list[netstate.NetEvent]:
    family, _, index, flags, _ = _IFINFOMSG.unpack_from(raw, _HEADER)
    if family != socket.AF_UNSPEC:
        return []  # AF_BRIDGE port notifications: a DELLINK there is not a deletion
    if msg_type == RTM_DELLINK:
        return [netstate.LinkGone(index)]
    attributes = _attributes(raw, _HEADER + _IFINFOMSG.size)
    name = attributes.get(IFLA_IFNAME)
    if name is None:
        raise ValueError("link message without IFLA_IFNAME")
    info = attributes.get(IFLA_LINKINFO)
    kind = _attributes(info, 0).get(IFLA_INFO_KIND, b"") if info is not None else b""
    link = Link(
        index,
        _text(name),
        bool(flags & IFF_UP),
        bool(flags & IFF_LOWER_UP),
        _text(kind),
    )
    return [netstate.LinkSeen(link)]


def _text(payload: bytes) -> str:
    """A NUL-terminated string attribute."""
    return payload.split(b"\0", 1)[0].decode()


def _address_events(msg_type: int, raw: bytes) -> list[netstate.NetEvent]:
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(raw, _HEADER)
    if family not in _FAMILIES:
        return []
    attributes = _attributes(raw, _HEADER + _IFADDRMSG.size)
    local = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)  # IFA_ADDRESS: peer on ptp
    if local is None:
        raise ValueError("address message without IFA_LOCAL or IFA_ADDRESS")
    flags = _u32(attributes.get(IFA_FLAGS), flags)
    address = Address(
        ifindex=index,
        address=ipaddress.ip_address(local),
        prefixlen=prefixlen,
        scope=scope,
        tentative=bool(flags & IFA_F_TENTATIVE),
    )
    if msg_type == RTM_DELADDR:
        return [netstate.AddressGone(address)]
    return [netstate.AddressSeen(address)]


def _route_events(msg_type: int, nl_flags: int, raw: bytes) -> list[netstate.NetEvent]:
    code, dst_len, _, _, table, _, _, kind, flags = _RTMSG.unpack_from(raw, _HEADER)
    family = _FAMILIES.get(code)
    usable = kind == RTN_UNICAST and not flags & RTM_F_CLONED
    if family is None or dst_len != 0 or not usable:
        return []
    attributes = _attributes(raw, _HEADER + _RTMSG.size)
    if (_u32(attributes.get(RTA_TABLE)) or table) != RT_TABLE_MAIN:
        return []
    if RTA_MULTIPATH in attributes or RTA_VIA in attributes:
        return _nexthop_route_events(msg_type, nl_flags, raw)
    oif = _u32(attributes.get(RTA_OIF))
    if not oif:
        return []
    gateway = attributes.get(RTA_GATEWAY)
    route = DefaultRoute(
        family,
        oif,
        _u32(attributes.get(RTA_PRIORITY)),
        ipaddress.ip_address(gateway) if gateway else None,
        linkdown=bool(flags & RTNH_F_LINKDOWN),
    )
    if msg_type == RTM_DELROUTE:
        return [netstate.RouteGone(route)]
    return [netstate.RouteSeen(route, bool(nl_flags & NLM_F_REPLACE))]


def _nexthop_route_events(msg_type: int, nl_flags: int, raw: bytes) -> list[netstate.NetEvent]:
    """Multipath routes and IPv4 routes via an IPv6 next hop: rare, so pyroute2 decodes."""
    from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: PLC0415 - see the module docstring

    msg: Any = rtmsg(raw)
    msg.decode()
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    family = _FAMILIES.get(msg["family"])
    usable = msg["type"] == RTN_UNICAST and not msg["flags"] & RTM_F_CLONED
    if family is None or table != RT_TABLE_MAIN or msg["dst_len"] != 0 or not usable:
        return []
    metric = msg.get_attr("RTA_PRIORITY") or 0

    def gateway(attrs: Any) -> IPAddress | None:
        via = attrs.get_attr("RTA_VIA")  # an IPv4 route via an IPv6 next hop
        found = attrs.get_attr("RTA_GATEWAY") or (via and via.get("addr"))
        return _ip(found) if found else None

    if msg.get_attr("RTA_MULTIPATH"):
        hops = [(hop["oif"], gateway(hop), hop["flags"]) for hop in msg.get_attr("RTA_MULTIPATH")]
    else:
        hops = [(msg.get_attr("RTA_OIF"), gateway(msg), msg["flags"])]
    routes = [
        DefaultRoute(family, oif, metric, gw, linkdown=bool(flags & RTNH_F_LINKDOWN))
        for oif, gw, flags in hops
        if oif
    ]
    if msg_type == RTM_DELROUTE:
        return [netstate.RouteGone(route) for route in routes]
    replace = bool(nl_flags & NLM_F_REPLACE)
    return [netstate.RouteSeen(route, replace and i == 0) for i, route in enumerate(routes)]


def decode(msg_type: int, nl_flags: int, raw: bytes) -> list[netstate.NetEvent]:
    """The state changes one rtnetlink message stands for (none for the uninteresting)."""
    if msg_type in (RTM_NEWLINK, RTM_DELLINK):
        return _link_events(msg_type, raw)
    if msg_type in (RTM_NEWADDR, RTM_DELADDR):
        return _address_events(msg_type, raw)
    if msg_type in ROUTE_TYPES:
        return _route_events(msg_type, nl_flags, raw)
    return []
