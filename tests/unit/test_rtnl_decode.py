"""The struct fast path of the rtnetlink decoder agrees with pyroute2's decoding."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netpathd.kernel.rtnl_decode import (
    IFF_LOWER_UP,
    IFF_UP,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    _nexthop_route_events,
    decode,
)
from netpathd.model import netstate
from netpathd.model.links import Address, DefaultRoute, Family, Link

RTNH_F_LINKDOWN = 0x10


def route_message(family: int, flags: int = 0, **attrs: Any) -> bytes:
    msg: Any = rtmsg()
    msg["family"], msg["table"], msg["type"], msg["flags"] = family, 254, 1, flags
    msg["attrs"] = [(name, value) for name, value in attrs.items()]
    msg.encode()
    return bytes(msg.data)


ROUTES = [
    route_message(socket.AF_INET, RTA_OIF=3, RTA_GATEWAY="198.51.100.1", RTA_PRIORITY=100),
    route_message(socket.AF_INET, RTNH_F_LINKDOWN, RTA_OIF=3, RTA_GATEWAY="198.51.100.1"),
    route_message(socket.AF_INET6, RTA_OIF=4, RTA_GATEWAY="2001:db8::1", RTA_PRIORITY=1024),
    route_message(socket.AF_INET6, RTA_OIF=4, RTA_TABLE=254, RTA_PRIORITY=7),
    route_message(socket.AF_INET, RTA_OIF=3, RTA_TABLE=1000),
    route_message(socket.AF_INET, RTA_GATEWAY="198.51.100.1"),
]


@pytest.mark.parametrize("raw", ROUTES)
@pytest.mark.parametrize("msg_type", [RTM_NEWROUTE, RTM_DELROUTE])
def test_routes_decode_as_pyroute2_decodes_them(raw: bytes, msg_type: int) -> None:
    assert decode(msg_type, 0, raw) == _nexthop_route_events(msg_type, 0, raw)


def test_a_linkdown_route_and_a_replace_are_read() -> None:
    (event,) = decode(RTM_NEWROUTE, 0x100, ROUTES[1])
    gateway = ipaddress.IPv4Address("198.51.100.1")
    assert event == netstate.RouteSeen(
        DefaultRoute(Family.IPV4, 3, 0, gateway, linkdown=True), replace=True
    )


def address_message(family: int, flags: int, **attrs: Any) -> bytes:
    msg: Any = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["index"], msg["scope"] = family, 64, 5, 253
    msg["flags"] = flags & 0xFF
    msg["attrs"] = [(name, value) for name, value in attrs.items()]
    msg.encode()
    return bytes(msg.data)


def test_addresses_decode_with_ifa_flags_over_the_header_flags() -> None:
    raw = address_message(socket.AF_INET6, 0, IFA_ADDRESS="2001:db8::5", IFA_FLAGS=0x40)
    address = Address(5, ipaddress.IPv6Address("2001:db8::5"), 64, 253, True)
    assert decode(RTM_NEWADDR, 0, raw) == [netstate.AddressSeen(address)]
    assert decode(RTM_DELADDR, 0, raw) == [netstate.AddressGone(address)]


def test_a_point_to_point_address_is_the_local_one() -> None:
    raw = address_message(socket.AF_INET, 0x40, IFA_LOCAL="192.0.2.2", IFA_ADDRESS="192.0.2.1")
    address = Address(5, ipaddress.IPv4Address("192.0.2.2"), 64, 253, True)
    assert decode(RTM_NEWADDR, 0, raw) == [netstate.AddressSeen(address)]


def test_a_truncated_attribute_is_an_error_not_a_guess() -> None:
    raw = address_message(socket.AF_INET6, 0, IFA_ADDRESS="2001:db8::5")
    with pytest.raises(ValueError, match="malformed attribute"):
        decode(RTM_NEWADDR, 0, raw[:-4])


def link_message(family: int, index: int, flags: int, **attrs: Any) -> bytes:
    msg: Any = ifinfmsg()
    msg["family"], msg["index"], msg["flags"], msg["change"] = family, index, flags, 0xFFFFFFFF
    msg["attrs"] = [(name, value) for name, value in attrs.items()]
    msg.encode()
    return bytes(msg.data)


@pytest.mark.parametrize("name", ["a", "eth1", "abc", "veth-with-15chr"])
@pytest.mark.parametrize("flags", [0, IFF_UP, IFF_UP | IFF_LOWER_UP | 0x1000])
def test_links_decode_as_pyroute2_encodes_them(name: str, flags: int) -> None:
    raw = link_message(socket.AF_UNSPEC, 7, flags, IFLA_IFNAME=name, IFLA_MTU=1500)
    link = Link(7, name, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))
    assert decode(RTM_NEWLINK, 0, raw) == [netstate.LinkSeen(link)]
    assert decode(RTM_DELLINK, 0, raw) == [netstate.LinkGone(7)]


@pytest.mark.parametrize("kind", ["tun", "wireguard", "veth"])
def test_a_links_kind_is_read_from_its_link_info(kind: str) -> None:
    """What tells a VPN's tunnel from a NIC: ``ip -d link`` shows it as the link's type."""
    info = {"attrs": [("IFLA_INFO_KIND", kind)]}
    raw = link_message(socket.AF_UNSPEC, 7, IFF_UP, IFLA_IFNAME="vpn0", IFLA_LINKINFO=info)
    assert decode(RTM_NEWLINK, 0, raw) == [netstate.LinkSeen(Link(7, "vpn0", True, False, kind))]


def test_a_bridge_port_notification_is_no_link_event() -> None:
    raw = link_message(socket.AF_BRIDGE, 7, IFF_UP, IFLA_IFNAME="port1")
    assert decode(RTM_DELLINK, 0, raw) == [] and decode(RTM_NEWLINK, 0, raw) == []


def test_a_link_without_a_name_is_an_error_not_a_guess() -> None:
    raw = link_message(socket.AF_UNSPEC, 7, IFF_UP, IFLA_MTU=1500)
    with pytest.raises(ValueError, match="IFLA_IFNAME"):
        decode(RTM_NEWLINK, 0, raw)
