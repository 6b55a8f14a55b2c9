"""Adapter over the kernel's MPTCP path manager ("mptcp_pm" generic netlink family).

Acts on the network namespace of the calling process.  Built on pyroute2's
nla classes (sent by ``netpathd.kernel.genl_transport``), with the attributes of its
``mptcp_msg`` and what pyroute2 0.9.7 lacks: ``SET_FLAGS``, the event attributes, and a
correct type for ``MPTCP_PM_ADDR_ATTR_IF_IDX`` (s32 in include/uapi/linux/mptcp_pm.h;
pyroute2 declares it 'hex', so dumps show ``'02:00:00:00'`` and an int cannot
be sent).  ``pyroute2.netlink.generic.mptcp`` itself is not imported: its package
loads pyroute2's whole socket layer (``nlsocket``: multiprocessing, pickle, json),
about 6 ms and 3 MiB of every start for classes netpathd does not use.  All ``Any`` from
pyroute2 stays inside this module: callers get ``netpathd.model.mptcp`` values and
``netpathd.errors`` exceptions.

Connection events come on another socket: ``netpathd.kernel.mptcp_events``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink import genlmsg, nla
from pyroute2.netlink.exceptions import NetlinkError

from netpathd.errors import AlreadyExists, Failed, InvalidArgument, NotFound, NotSupported
from netpathd.kernel import mptcp_codec
from netpathd.kernel.genl_transport import GenlTransport
from netpathd.model.mptcp import (
    MAX_ENDPOINTS,
    Endpoint,
    EndpointFlag,
    Limits,
    flags_from_word,
    set_flags,
    validate_endpoint,
    validate_endpoint_id,
    validate_limits,
)

REQUEST_TIMEOUT = 5.0
"""Seconds to wait for the kernel's answer; a netlink request never legitimately takes longer."""

_NLA_F_NESTED = 0x8000

MPTCP_GENL_NAME = "mptcp_pm"
# enum mptcp_pm_cmd (include/uapi/linux/mptcp_pm.h)
MPTCP_PM_CMD_ADD_ADDR, MPTCP_PM_CMD_DEL_ADDR, MPTCP_PM_CMD_GET_ADDR = 1, 2, 3
MPTCP_PM_CMD_FLUSH_ADDRS, MPTCP_PM_CMD_SET_LIMITS, MPTCP_PM_CMD_GET_LIMITS = 4, 5, 6
MPTCP_PM_CMD_SET_FLAGS = 7


class pm_msg(genlmsg):  # type: ignore[misc]  # noqa: N801 - pyroute2 looks nla classes up by name
    """pyroute2's ``mptcp_msg`` with ``MPTCP_PM_ADDR_ATTR_IF_IDX`` typed as the kernel's s32."""

    prefix = "MPTCP_PM_ATTR_"
    nla_map = (
        ("MPTCP_PM_ATTR_UNSPEC", "none"),
        ("MPTCP_PM_ATTR_ADDR", "pm_addr"),
        ("MPTCP_PM_ATTR_RCV_ADD_ADDRS", "uint32"),
        ("MPTCP_PM_ATTR_SUBFLOWS", "uint32"),
    )

    class pm_addr(nla):  # type: ignore[misc]  # noqa: N801
        prefix = "MPTCP_PM_ADDR_ATTR_"
        nla_map = (
            ("MPTCP_PM_ADDR_ATTR_UNSPEC", "none"),
            ("MPTCP_PM_ADDR_ATTR_FAMILY", "uint16"),
            ("MPTCP_PM_ADDR_ATTR_ID", "uint8"),
            ("MPTCP_PM_ADDR_ATTR_ADDR4", "ipaddr"),
            ("MPTCP_PM_ADDR_ATTR_ADDR6", "ipaddr"),
            ("MPTCP_PM_ADDR_ATTR_PORT", "uint16"),
            ("MPTCP_PM_ADDR_ATTR_FLAGS", "uint32"),
            ("MPTCP_PM_ADDR_ATTR_IF_IDX", "int32"),
        )


def if_nametoindex(name: str) -> int:
    """The ifindex of ``name`` in the current namespace; NotFound before the kernel is asked."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise NotFound(f"no network interface {name!r}") from None


def _if_indextoname(ifindex: int) -> str:
    if not ifindex:
        return ""
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return ""  # the link went away after the endpoint was bound to it


def _kernel_text(error: NetlinkError) -> str:
    """The extack message when the kernel sent one (ext_ack=True), else strerror."""
    text = error.args[1] if len(error.args) > 1 and error.args[1] else ""
    return str(text) or errno.errorcode.get(error.code, str(error.code))


def _failed(action: str, error: NetlinkError) -> Failed:
    name = errno.errorcode.get(error.code, str(error.code))
    return Failed(f"{action}: kernel refused with {name}: {_kernel_text(error)}")


class MptcpPm:
    """The endpoint table and limits of the current network namespace.

    Use as ``async with MptcpPm() as pm:``.  Reading needs no privilege;
    changing needs CAP_NET_ADMIN (the kernel answers EPERM, mapped to Failed).
    The kernel sends no notification when someone else changes endpoints or
    limits (measured on 6.18), so every method reads the kernel afresh.
    """

    def __init__(self) -> None:
        self._transport: GenlTransport | None = None
        self._family = 0

    async def __aenter__(self) -> MptcpPm:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def open(self) -> None:
        transport = GenlTransport()
        try:
            family = await asyncio.wait_for(transport.family_id(MPTCP_GENL_NAME), REQUEST_TIMEOUT)
        except NetlinkError as error:
            transport.close()
            if error.code == errno.ENOENT:
                raise NotSupported("the kernel has no MPTCP path manager (CONFIG_MPTCP)") from None
            raise _failed("resolving the mptcp_pm netlink family", error) from None
        except BaseException:
            transport.close()
            raise
        self._transport, self._family = transport, family

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _open_transport(self) -> GenlTransport:
        if self._transport is None:
            raise Failed("MPTCP path manager adapter is not open")
        return self._transport

    async def _request(self, cmd: int, attrs: list[Any], *, dump: bool = False) -> list[Any]:
        transport = self._open_transport()
        request = _message(cmd, attrs)
        answers = await asyncio.wait_for(
            transport.request(request, self._family, dump=dump), REQUEST_TIMEOUT
        )
        replies = []
        for answer in answers:
            reply = pm_msg(answer)
            reply.decode()
            if reply.get("cmd") == cmd:
                replies.append(reply)
        return replies

    async def _request_body(self, body: bytes, *, dump: bool = False) -> list[bytes]:
        """A message packed by ``mptcp_codec``; the raw answers."""
        transport = self._open_transport()
        return await transport.request_body(
            body, self._family, dump=dump, reply_within=REQUEST_TIMEOUT
        )

    async def _request_off_loop(self, cmd: int, attrs: list[Any]) -> None:
        """For the commands whose kernel handler sleeps (``netpathd.kernel.genl_transport``)."""
        transport = self._open_transport()
        await transport.request_off_loop(_message(cmd, attrs), self._family, REQUEST_TIMEOUT)

    async def get_limits(self) -> Limits:
        try:
            (reply,) = await self._request(MPTCP_PM_CMD_GET_LIMITS, [])
        except NetlinkError as error:
            raise _failed("reading MPTCP limits", error) from None
        return Limits(
            subflows=int(reply.get_attr("MPTCP_PM_ATTR_SUBFLOWS")),
            add_addr_accepted=int(reply.get_attr("MPTCP_PM_ATTR_RCV_ADD_ADDRS")),
        )

    async def set_limits(self, limits: Limits) -> None:
        validate_limits(limits)
        attrs = [
            ("MPTCP_PM_ATTR_SUBFLOWS", limits.subflows),
            ("MPTCP_PM_ATTR_RCV_ADD_ADDRS", limits.add_addr_accepted),
        ]
        try:
            await self._request(MPTCP_PM_CMD_SET_LIMITS, attrs)
        except NetlinkError as error:
            if error.code == errno.EINVAL:
                raise InvalidArgument(f"MPTCP limits refused: {_kernel_text(error)}") from None
            raise _failed("setting MPTCP limits", error) from None

    async def list_endpoints(self) -> list[Endpoint]:
        """The kernel's table, in its order; decoded by ``mptcp_codec`` (no pyroute2)."""
        try:
            replies = await self._request_body(mptcp_codec.get_addr_dump(), dump=True)
        except NetlinkError as error:
            raise _failed("reading MPTCP endpoints", error) from None
        return mptcp_codec.endpoints(replies, _if_indextoname)

    def interface_index(self, name: str) -> int:
        """The ifindex the kernel has for ``name`` now; 0 when no link has that name."""
        try:
            return if_nametoindex(name)
        except NotFound:
            return 0

    async def add_endpoint(self, endpoint: Endpoint) -> int:
        """Add ``endpoint``; returns its id, the kernel's choice when ``endpoint.id`` is 0."""
        new_id, _ = await self.add_endpoint_and_list(endpoint)
        return new_id

    async def add_endpoint_and_list(
        self, endpoint: Endpoint, before: Sequence[Endpoint] | None = None
    ) -> tuple[int, list[Endpoint]]:
        """Add ``endpoint``; returns its id and the table right after.

        ``mptcp_pm_nl_add_addr_doit`` (net/mptcp/pm_kernel.c) acks with 0 and
        no id, so the new entry is read back and found by address and port,
        which the kernel keeps unique (a duplicate is EEXIST); a caller that
        needs the table too gets that same read instead of a second dump.

        ``before``, the table the caller read just before under its own lock,
        spares that read when the id is given and no ``implicit`` entry has the
        address (which the kernel would replace, maybe keeping its id): the add
        then changes only its own entry, and the kernel dumps in id order
        (``mptcp_pm_nl_dump_addr`` walks ``id_bitmap``).
        """
        ifindex = await self.add_without_readback(endpoint)
        key = (endpoint.address, endpoint.port)
        if before is not None and endpoint.id and all((e.address, e.port) != key for e in before):
            added = dataclasses.replace(
                endpoint, interface=_if_indextoname(ifindex), ifindex=ifindex
            )
            return endpoint.id, sorted([*before, added], key=lambda e: e.id)
        table = await self.list_endpoints()
        for added in table:
            if added.address == endpoint.address and added.port == endpoint.port:
                return added.id, table
        raise Failed(f"endpoint {endpoint.address} was accepted but is not in the kernel's table")

    async def add_without_readback(self, endpoint: Endpoint) -> int:
        """Add ``endpoint`` and return at the kernel's ack, which carries no id.

        For callers that add several endpoints and read the table once after all.
        Returns the ifindex the endpoint was bound to (0: none).
        """
        validate_endpoint(endpoint)
        ifindex = if_nametoindex(endpoint.interface) if endpoint.interface else endpoint.ifindex
        try:
            await self._request_body(mptcp_codec.add_addr(endpoint, ifindex))
        except NetlinkError as error:
            raise _add_error(endpoint, error) from None
        return ifindex

    async def remove_endpoint(self, endpoint_id: int) -> None:
        """Remove by id.

        Id 0 is refused: to the kernel it means "the initial subflow's address".
        """
        validate_endpoint_id(endpoint_id, allow_zero=False)
        transport = self._open_transport()
        try:
            await transport.request_body_off_loop(
                mptcp_codec.del_addr(endpoint_id), self._family, REQUEST_TIMEOUT
            )
        except NetlinkError as error:
            raise _by_id_error("removing", endpoint_id, error) from None

    async def set_endpoint_flags(
        self, endpoint_id: int, flags: frozenset[EndpointFlag]
    ) -> Endpoint:
        """Set the backup/fullmesh state of an endpoint to exactly ``flags``; returns it updated.

        SET_FLAGS overwrites backup and fullmesh together, so the current
        entry is read first and the full word computed by ``model.set_flags``.
        Without an address the kernel looks the entry up by id
        (``mptcp_pm_nl_set_flags``: family AF_UNSPEC → ``__lookup_addr_by_id``).
        """
        validate_endpoint_id(endpoint_id, allow_zero=False)
        current = next((e for e in await self.list_endpoints() if e.id == endpoint_id), None)
        if current is None:
            raise NotFound(f"no MPTCP endpoint with id {endpoint_id}")
        word = set_flags(current, flags)
        attrs = [("MPTCP_PM_ADDR_ATTR_ID", endpoint_id), ("MPTCP_PM_ADDR_ATTR_FLAGS", word)]
        try:
            await self._request(MPTCP_PM_CMD_SET_FLAGS, [_addr_nla(attrs)])
        except NetlinkError as error:
            raise _by_id_error("changing flags of", endpoint_id, error) from None
        return dataclasses.replace(current, flags=flags_from_word(word))

    async def flush_endpoints(self) -> None:
        """Remove every endpoint; the limits stay as they are (measured on 6.18)."""
        try:
            await self._request_off_loop(MPTCP_PM_CMD_FLUSH_ADDRS, [])
        except NetlinkError as error:
            raise _failed("flushing MPTCP endpoints", error) from None


def _message(cmd: int, attrs: list[Any]) -> Any:
    msg = pm_msg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    return msg


def _addr_nla(attrs: list[tuple[str, Any]]) -> tuple[str, dict[str, Any], int]:
    return ("MPTCP_PM_ATTR_ADDR", {"attrs": attrs}, _NLA_F_NESTED)


def _add_error(endpoint: Endpoint, error: NetlinkError) -> Exception:
    """ADD_ADDR refusals (``mptcp_pm_nl_append_new_local_addr``, measured on 6.18)."""
    text = _kernel_text(error)
    # The kernel's text for both is "too many addresses or duplicate one: -17" (or -16):
    # the errno already says which, and the number means nothing to a user.
    if error.code == errno.EEXIST:
        # also when the address exists on another device or as its v4-mapped v6 form
        return AlreadyExists(f"MPTCP endpoint address {endpoint.address} already exists")
    if error.code == errno.EBUSY:
        return AlreadyExists(f"MPTCP endpoint id {endpoint.id} is already in use")
    if error.code == errno.ERANGE:
        return InvalidArgument(
            f"cannot add {endpoint.address}: at most {MAX_ENDPOINTS} endpoints per namespace"
        )
    if error.code in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
        # with a port the kernel creates a listening socket on address:port
        return Failed(
            f"cannot listen on {endpoint.address} port {endpoint.port}: "
            f"{errno.errorcode[error.code]}: {text}"
        )
    if error.code == errno.EINVAL:
        return InvalidArgument(f"MPTCP endpoint {endpoint.address} refused: {text}")
    return _failed(f"adding MPTCP endpoint {endpoint.address}", error)


def _by_id_error(action: str, endpoint_id: int, error: NetlinkError) -> Exception:
    """DEL_ADDR / SET_FLAGS answer EINVAL "address not found" for an unknown id."""
    text = _kernel_text(error)
    if error.code == errno.ENOENT or (error.code == errno.EINVAL and "not found" in text):
        return NotFound(f"no MPTCP endpoint with id {endpoint_id}")
    return _failed(f"{action} MPTCP endpoint {endpoint_id}", error)
