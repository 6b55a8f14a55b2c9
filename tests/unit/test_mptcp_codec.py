"""The hand-packed endpoint messages are byte for byte what pyroute2's pm_msg makes."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest
from pyroute2.netlink.generic.mptcp import (
    MPTCP_PM_CMD_ADD_ADDR,
    MPTCP_PM_CMD_DEL_ADDR,
    MPTCP_PM_CMD_GET_ADDR,
)

from netpathd.kernel import mptcp_codec, mptcp_pm
from netpathd.kernel.genl_transport import _frame, _pack
from netpathd.model.mptcp import (
    Endpoint,
    EndpointFlag,
    flags_from_word,
    flags_to_word,
    parse_address,
)

FAMILY = 0x1E
ENDPOINTS = [
    Endpoint(77, parse_address("192.0.2.77"), flags=frozenset({EndpointFlag.SUBFLOW})),
    Endpoint(0, parse_address("2001:db8::5"), flags=frozenset()),
    Endpoint(
        255,
        parse_address("198.51.100.1"),
        port=8080,
        ifindex=3,
        flags=frozenset({EndpointFlag.SIGNAL, EndpointFlag.BACKUP}),
    ),
    Endpoint(
        9,
        parse_address("2001:db8::ffff:1"),
        ifindex=0x7FFFFFFF,
        flags=frozenset({EndpointFlag.SUBFLOW, EndpointFlag.FULLMESH, EndpointFlag.IMPLICIT}),
    ),
]


def pyroute2_body(cmd: int, addr: list[tuple[str, Any]] | None) -> bytes:
    """What pyroute2 puts after the nlmsghdr for the same request."""
    attrs = [] if addr is None else [mptcp_pm._addr_nla(addr)]
    return _pack(mptcp_pm._message(cmd, attrs))


def pyroute2_addr(endpoint: Endpoint) -> list[tuple[str, Any]]:
    """The attributes in the order mptcp_pm sent them when pyroute2 packed them."""
    version = endpoint.address.version
    addr: list[tuple[str, Any]] = [
        ("MPTCP_PM_ADDR_ATTR_FAMILY", socket.AF_INET if version == 4 else socket.AF_INET6),
        (f"MPTCP_PM_ADDR_ATTR_ADDR{4 if version == 4 else 6}", str(endpoint.address)),
    ]
    addr.append(("MPTCP_PM_ADDR_ATTR_FLAGS", flags_to_word(endpoint.flags)))
    if endpoint.id:
        addr.append(("MPTCP_PM_ADDR_ATTR_ID", endpoint.id))
    if endpoint.port:
        addr.append(("MPTCP_PM_ADDR_ATTR_PORT", endpoint.port))
    if endpoint.ifindex:
        addr.append(("MPTCP_PM_ADDR_ATTR_IF_IDX", endpoint.ifindex))
    return addr


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_add_addr_is_pyroute2s_message(endpoint: Endpoint) -> None:
    expected = pyroute2_body(MPTCP_PM_CMD_ADD_ADDR, pyroute2_addr(endpoint))
    assert mptcp_codec.add_addr(endpoint, endpoint.ifindex) == expected


def test_del_addr_and_the_dump_are_pyroute2s_messages() -> None:
    assert mptcp_codec.del_addr(200) == pyroute2_body(
        MPTCP_PM_CMD_DEL_ADDR, [("MPTCP_PM_ADDR_ATTR_ID", 200)]
    )
    assert mptcp_codec.get_addr_dump() == pyroute2_body(MPTCP_PM_CMD_GET_ADDR, None)


def dump_reply(endpoint: Endpoint) -> bytes:
    """A GET_ADDR answer as the kernel sends it (``mptcp_nl_fill_addr``), via pyroute2."""
    addr = pyroute2_addr(endpoint)
    if not endpoint.id:
        addr.append(("MPTCP_PM_ADDR_ATTR_ID", 0))
    msg = mptcp_pm._message(MPTCP_PM_CMD_GET_ADDR, [mptcp_pm._addr_nla(addr)])
    return _frame(_pack(msg), FAMILY, 2, 7)


def names(ifindex: int) -> str:
    return f"if{ifindex}" if ifindex else ""


def pyroute2_decoded(reply: bytes) -> Endpoint:
    """How mptcp_pm read a dump answer when pyroute2 decoded it."""
    msg = mptcp_pm.pm_msg(reply)
    msg.decode()
    addr = msg.get_attr("MPTCP_PM_ATTR_ADDR")
    text = addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR4") or addr.get_attr("MPTCP_PM_ADDR_ATTR_ADDR6")
    ifindex = int(addr.get_attr("MPTCP_PM_ADDR_ATTR_IF_IDX") or 0)
    return Endpoint(
        id=int(addr.get_attr("MPTCP_PM_ADDR_ATTR_ID") or 0),
        address=parse_address(str(text)),
        port=int(addr.get_attr("MPTCP_PM_ADDR_ATTR_PORT") or 0),
        interface=names(ifindex),
        ifindex=ifindex,
        flags=flags_from_word(int(addr.get_attr("MPTCP_PM_ADDR_ATTR_FLAGS") or 0)),
    )


def test_dump_answers_decode_as_pyroute2_decodes_them() -> None:
    replies = [dump_reply(endpoint) for endpoint in ENDPOINTS]
    decoded = mptcp_codec.endpoints(replies, names)
    assert decoded == [pyroute2_decoded(reply) for reply in replies]
    assert decoded == ENDPOINTS[:2] + [
        dataclasses.replace(e, interface=names(e.ifindex)) for e in ENDPOINTS[2:]
    ]
    assert [e.interface for e in decoded] == ["", "", "if3", "if2147483647"]


def test_answers_to_other_commands_are_skipped() -> None:
    other = bytearray(dump_reply(ENDPOINTS[0]))
    other[16] = MPTCP_PM_CMD_ADD_ADDR
    assert mptcp_codec.endpoints([bytes(other), b"\0" * 8], names) == []
