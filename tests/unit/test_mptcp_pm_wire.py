"""The struct encoding of ADD_ADDR and decoding of GET_ADDR dumps agree with pyroute2's."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from pyroute2.netlink.generic.mptcp import MPTCP_PM_CMD_ADD_ADDR, MPTCP_PM_CMD_GET_ADDR

from netpathd.kernel.mptcp_pm import _NLA_F_NESTED, pm_msg
from netpathd.kernel.mptcp_pm_wire import add_addr_body, endpoints_from_dump
from netpathd.model.mptcp import Endpoint, EndpointFlag, flags_from_word, parse_address

NAMES = {2: "eth1", 7: "wlan0"}


def name_of(ifindex: int) -> str:
    return NAMES.get(ifindex, "")


def reply(cmd: int, *addr: tuple[str, Any]) -> bytes:
    msg: Any = pm_msg()
    msg["cmd"], msg["version"] = cmd, 1
    msg["attrs"] = [("MPTCP_PM_ATTR_ADDR", {"attrs": list(addr)}, _NLA_F_NESTED)]
    msg.encode()
    return bytes(msg.data)


def v4(address: str) -> list[tuple[str, Any]]:
    return [("MPTCP_PM_ADDR_ATTR_FAMILY", socket.AF_INET), ("MPTCP_PM_ADDR_ATTR_ADDR4", address)]


def v6(address: str) -> list[tuple[str, Any]]:
    return [("MPTCP_PM_ADDR_ATTR_FAMILY", socket.AF_INET6), ("MPTCP_PM_ADDR_ATTR_ADDR6", address)]


REPLIES = [
    reply(MPTCP_PM_CMD_GET_ADDR, *v4("192.0.2.1"), ("MPTCP_PM_ADDR_ATTR_ID", 1)),
    reply(
        MPTCP_PM_CMD_GET_ADDR,
        *v4("198.51.100.7"),
        ("MPTCP_PM_ADDR_ATTR_ID", 255),
        ("MPTCP_PM_ADDR_ATTR_FLAGS", 0x1 | 0x4),  # signal, backup
        ("MPTCP_PM_ADDR_ATTR_PORT", 10443),
        ("MPTCP_PM_ADDR_ATTR_IF_IDX", 2),
    ),
    reply(
        MPTCP_PM_CMD_GET_ADDR,
        *v6("2001:db8::1"),
        ("MPTCP_PM_ADDR_ATTR_ID", 3),
        ("MPTCP_PM_ADDR_ATTR_FLAGS", 0x2 | 0x8 | 0x10),  # subflow, fullmesh, implicit
        ("MPTCP_PM_ADDR_ATTR_IF_IDX", 7),
    ),
    reply(MPTCP_PM_CMD_GET_ADDR, *v4("203.0.113.9"), ("MPTCP_PM_ADDR_ATTR_IF_IDX", 99)),
]


def pyroute2_decoding(data: bytes) -> Endpoint:
    """What ``MptcpPm.list_endpoints`` made of a reply before it had its own decoder."""
    msg: Any = pm_msg(data)
    msg.decode()
    addr = msg.get_attr("MPTCP_PM_ATTR_ADDR")
    text = addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR4") or addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR6")
    ifindex = int(addr.get_attr("MPTCP_PM_ADDR_ATTR_IF_IDX") or 0)
    return Endpoint(
        id=int(addr.get_attr("MPTCP_PM_ADDR_ATTR_ID") or 0),
        address=parse_address(str(text)),
        port=int(addr.get_attr("MPTCP_PM_ADDR_ATTR_PORT") or 0),
        interface=name_of(ifindex),
        ifindex=ifindex,
        flags=flags_from_word(int(addr.get_attr("MPTCP_PM_ADDR_ATTR_FLAGS") or 0)),
    )


@pytest.mark.parametrize("data", REPLIES)
def test_each_endpoint_decodes_as_pyroute2_decodes_it(data: bytes) -> None:
    assert endpoints_from_dump([data], MPTCP_PM_CMD_GET_ADDR, name_of) == [pyroute2_decoding(data)]


def test_a_dump_keeps_the_kernels_order_and_skips_other_commands_and_short_messages() -> None:
    answers = [*REPLIES, reply(MPTCP_PM_CMD_ADD_ADDR, *v4("192.0.2.200")), REPLIES[0][:12]]
    endpoints = endpoints_from_dump(answers, MPTCP_PM_CMD_GET_ADDR, name_of)
    assert [(str(e.address), e.id, e.port, e.interface) for e in endpoints] == [
        ("192.0.2.1", 1, 0, ""),
        ("198.51.100.7", 255, 10443, "eth1"),
        ("2001:db8::1", 3, 0, "wlan0"),
        ("203.0.113.9", 0, 0, ""),
    ]


def pyroute2_add_addr(endpoint: Endpoint, ifindex: int) -> bytes:
    """The genlmsghdr and attributes ``MptcpPm`` sent through pyroute2's encoder before."""
    family = socket.AF_INET if endpoint.address.version == 4 else socket.AF_INET6
    kind = "MPTCP_PM_ADDR_ATTR_ADDR4" if family == socket.AF_INET else "MPTCP_PM_ADDR_ATTR_ADDR6"
    addr: list[tuple[str, Any]] = [
        ("MPTCP_PM_ADDR_ATTR_FAMILY", family),
        (kind, str(endpoint.address)),
        ("MPTCP_PM_ADDR_ATTR_FLAGS", sum(flag.bit for flag in endpoint.flags)),
    ]
    if endpoint.id:
        addr.append(("MPTCP_PM_ADDR_ATTR_ID", endpoint.id))
    if endpoint.port:
        addr.append(("MPTCP_PM_ADDR_ATTR_PORT", endpoint.port))
    if ifindex:
        addr.append(("MPTCP_PM_ADDR_ATTR_IF_IDX", ifindex))
    return reply(MPTCP_PM_CMD_ADD_ADDR, *addr)[16:]  # without the nlmsghdr


ADDS = [
    (Endpoint(0, ipaddress.ip_address("192.0.2.1"), flags=frozenset({EndpointFlag.SUBFLOW})), 2),
    (Endpoint(0, ipaddress.ip_address("2001:db8::7")), 0),
    (
        Endpoint(
            200,
            ipaddress.ip_address("198.51.100.9"),
            port=10443,
            flags=frozenset({EndpointFlag.SIGNAL, EndpointFlag.BACKUP}),
        ),
        7,
    ),
]


@pytest.mark.parametrize(("endpoint", "ifindex"), ADDS)
def test_add_addr_is_encoded_as_pyroute2_encodes_it(endpoint: Endpoint, ifindex: int) -> None:
    assert add_addr_body(MPTCP_PM_CMD_ADD_ADDR, endpoint, ifindex) == pyroute2_add_addr(
        endpoint, ifindex
    )
