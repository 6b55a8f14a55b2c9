"""Decoding the few rtnetlink messages that get past the watcher's cheap checks.

Links, addresses and main-table default routes become `model.netstate`
events; everything else decodes to no event at all.  pyroute2's message
classes do the attribute parsing (its `ifinfmsg`, `ifaddrmsg` and `rtmsg`).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

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


def _ip(value: Any) -> IPAddress:
    return ipaddress.ip_address(str(value))


def _link_events(msg_type: int, raw: bytes) -> list[netstate.NetEvent]:
    msg: Any = ifinfmsg(raw)
    msg.decode()
    if msg["family"] != socket.AF_UNSPEC:
        return []  # AF_BRIDGE port notifications: a DELLINK there is not a deletion
    if msg_type == RTM_DELLINK:
        return [netstate.LinkGone(msg["index"])]
    flags = msg["flags"]
    link = Link(
        msg["index"], msg.get_attr("IFLA_IFNAME"), bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP)
    )
    return [netstate.LinkSeen(link)]


def _address_events(msg_type: int, raw: bytes) -> list[netstate.NetEvent]:
    msg: Any = ifaddrmsg(raw)
    msg.decode()
    if msg["family"] not in _FAMILIES:
        return []
    local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")  # IFA_ADDRESS: peer on ptp
    flags = msg.get_attr("IFA_FLAGS")
    flags = msg["flags"] if flags is None else flags
    address = Address(
        ifindex=msg["index"],
        address=_ip(local),
        prefixlen=msg["prefixlen"],
        scope=msg["scope"],
        tentative=bool(flags & IFA_F_TENTATIVE),
    )
    if msg_type == RTM_DELADDR:
        return [netstate.AddressGone(address)]
    return [netstate.AddressSeen(address)]


def _route_events(msg_type: int, nl_flags: int, raw: bytes) -> list[netstate.NetEvent]:
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
