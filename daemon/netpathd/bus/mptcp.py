"""D-Bus face of the MPTCP manager: ``org.netpathd1.Mptcp`` on ``/org/netpathd1``.

Every property getter reads the kernel at the moment of the Get: the kernel
does not announce endpoint or limit changes made by others (``ip mptcp``,
NetworkManager), so a cached value could be wrong with no way to know.
Runtime-only changes have their own methods with a ``Runtime`` suffix, as
``org.netpathd1.Dns.SetConnectionRuntime`` does, so busctl users see the
choice in the method name rather than in a flag argument.
"""

# No "from __future__ import annotations": dbus-fast reads the annotations at runtime.

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from dbus_fast import PropertyAccess, Variant
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import dbus_method, dbus_property, dbus_signal

from netpathd.bus.errors import dbus_errors
from netpathd.bus.polkit import Authorizer
from netpathd.bus.tcp_to_mptcp import TcpToMptcpMembers
from netpathd.errors import NotSupported
from netpathd.model.mptcp import Endpoint, Limits, validate_endpoint_id, validate_limits
from netpathd.model.mptcp_config import flag_names
from netpathd.model.mptcp_request import endpoint_request, flags_request
from netpathd.mptcp_manager import MptcpManager
from netpathd.tcp_to_mptcp import TcpToMptcp

if TYPE_CHECKING:  # sock_diag and /proc scanning load only when GetConnections is called
    from netpathd.kernel.mptcp_diag import MptcpConnection, Subflow
    from netpathd.kernel.mptcp_events import MptcpEvent
    from netpathd.kernel.sockets_owner import Owner
    from netpathd.mptcp_apps import MptcpApps

INTERFACE = "org.netpathd1.Mptcp"

Strings = Annotated[list[str], DBusSignature("as")]
EndpointList = Annotated[list[list[Any]], DBusSignature("a(usqsas)")]
ConnectionList = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]
EventBody = Annotated[tuple[str, dict[str, Variant]], DBusSignature("sa{sv}")]

_SIGNED_DETAILS = frozenset({"if_idx"})  # MPTCP_ATTR_IF_IDX is s32; the rest are unsigned


def endpoint_struct(endpoint: Endpoint) -> list[Any]:
    return [
        endpoint.id,
        str(endpoint.address),
        endpoint.port,
        endpoint.interface,
        flag_names(endpoint.flags),
    ]


def event_details(details: Mapping[str, bool | int | str]) -> dict[str, Variant]:
    result = {}
    for key, value in details.items():
        if isinstance(value, bool):
            result[key] = Variant("b", value)
        elif isinstance(value, int):
            result[key] = Variant("i" if key in _SIGNED_DETAILS else "u", value)
        else:
            result[key] = Variant("s", str(value))
    return result


def _address(value: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Variant:
    return Variant("s", str(value))


def subflow_dict(subflow: "Subflow") -> dict[str, Variant]:
    return {
        "local_address": _address(subflow.local_address),
        "local_port": Variant("q", subflow.local_port),
        "remote_address": _address(subflow.remote_address),
        "remote_port": Variant("q", subflow.remote_port),
        "state": Variant("s", subflow.state),
        "local_id": Variant("u", subflow.local_id),
        "remote_id": Variant("u", subflow.remote_id),
        "backup": Variant("b", subflow.backup),
        "flags": Variant("u", subflow.flags),
        "bytes_sent": Variant("t", subflow.bytes_sent),
        "bytes_received": Variant("t", subflow.bytes_received),
        "bytes_acked": Variant("t", subflow.bytes_acked),
    }


def connection_dict(conn: "MptcpConnection", owners: "Sequence[Owner]" = ()) -> dict[str, Variant]:
    return {
        "token": Variant("u", conn.token),
        "local_address": _address(conn.local_address),
        "local_port": Variant("q", conn.local_port),
        "remote_address": _address(conn.remote_address),
        "remote_port": Variant("q", conn.remote_port),
        "state": Variant("s", conn.state),
        "extra_subflows": Variant("u", conn.extra_subflows),
        "add_addr_signal": Variant("u", conn.add_addr_signal),
        "add_addr_accepted": Variant("u", conn.add_addr_accepted),
        "local_addr_used": Variant("u", conn.local_addr_used),
        "local_addr_max": Variant("u", conn.local_addr_max),
        "flags": Variant("u", conn.flags),
        "bytes_sent": Variant("t", conn.bytes_sent),
        "bytes_received": Variant("t", conn.bytes_received),
        "bytes_acked": Variant("t", conn.bytes_acked),
        "subflows": Variant("aa{sv}", [subflow_dict(s) for s in conn.subflows]),
        # added later, so clients of older versions must not rely on them
        "inode": Variant("t", conn.inode),
        "processes": Variant("a(us)", [[owner.pid, owner.comm] for owner in owners]),
    }


class MptcpInterface(TcpToMptcpMembers):
    def __init__(
        self,
        mptcp: MptcpManager,
        polkit: Authorizer,
        apps: "Callable[[], MptcpApps] | None" = None,
        tcp: TcpToMptcp | None = None,
    ) -> None:
        super().__init__(INTERFACE)
        self._mptcp = mptcp
        self._polkit = polkit
        self._make_apps = apps
        self._made_apps = None
        self._tcp = tcp
        mptcp.observe(self._on_change)
        mptcp.observe_events(self._on_event)

    # -- properties: read from the kernel at every Get -------------------------------

    @dbus_property()
    @dbus_errors
    def Enabled(self) -> DBusBool:
        return self._mptcp.enabled()

    @Enabled.setter  # type: ignore[no-redef]
    @dbus_errors
    async def Enabled(self, value: DBusBool) -> None:
        await self._polkit.authorize(INTERFACE, "Enabled", value=str(value).lower())
        await self._mptcp.set_enabled(value, runtime=False)

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    async def Subflows(self) -> DBusUInt32:
        return (await self._mptcp.limits()).subflows

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    async def AddAddrAccepted(self) -> DBusUInt32:
        return (await self._mptcp.limits()).add_addr_accepted

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    async def Endpoints(self) -> EndpointList:
        return [endpoint_struct(e) for e in await self._mptcp.endpoints()]

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    async def SystemWideMode(self) -> DBusStr:
        """Probed once, on the first need (tcp_to_mptcp.py): BTF, the kernel's functions and
        its BPF policy do not change at runtime; the probe runs in steps and holds up no one
        else."""
        if self._tcp is None:
            return "unavailable: TCP->MPTCP is not configured in this daemon"
        return str(await self._tcp.probed())

    # -- methods ---------------------------------------------------------------------

    @dbus_method()
    @dbus_errors
    async def SetEnabledRuntime(self, enabled: DBusBool) -> None:
        await self._polkit.authorize(INTERFACE, "SetEnabledRuntime", value=str(enabled).lower())
        await self._mptcp.set_enabled(enabled, runtime=True)

    @dbus_method()
    @dbus_errors
    async def SetLimits(self, subflows: DBusUInt32, add_addr_accepted: DBusUInt32) -> None:
        limits = Limits(subflows, add_addr_accepted)
        validate_limits(limits)
        await self._polkit.authorize(
            INTERFACE, "SetLimits", value=f"{subflows} {add_addr_accepted}"
        )
        await self._mptcp.set_limits(limits, runtime=False)

    @dbus_method()
    @dbus_errors
    async def SetLimitsRuntime(self, subflows: DBusUInt32, add_addr_accepted: DBusUInt32) -> None:
        limits = Limits(subflows, add_addr_accepted)
        validate_limits(limits)
        await self._polkit.authorize(
            INTERFACE, "SetLimitsRuntime", value=f"{subflows} {add_addr_accepted}"
        )
        await self._mptcp.set_limits(limits, runtime=True)

    @dbus_method()
    @dbus_errors
    async def AddEndpoint(
        self,
        address: DBusStr,
        flags: Strings,
        interface: DBusStr,
        port: DBusUInt16,
        id: DBusUInt32,
    ) -> DBusUInt32:
        config = endpoint_request(address, flags, interface, port, id)
        await self._polkit.authorize(INTERFACE, "AddEndpoint", endpoint=address)
        return await self._mptcp.add_endpoint(config, runtime=False)

    @dbus_method()
    @dbus_errors
    async def AddEndpointRuntime(
        self,
        address: DBusStr,
        flags: Strings,
        interface: DBusStr,
        port: DBusUInt16,
        id: DBusUInt32,
    ) -> DBusUInt32:
        config = endpoint_request(address, flags, interface, port, id)
        await self._polkit.authorize(INTERFACE, "AddEndpointRuntime", endpoint=address)
        return await self._mptcp.add_endpoint(config, runtime=True)

    @dbus_method()
    @dbus_errors
    async def RemoveEndpoint(self, id: DBusUInt32) -> None:
        validate_endpoint_id(id, allow_zero=False)
        await self._polkit.authorize(INTERFACE, "RemoveEndpoint", id=str(id))
        await self._mptcp.remove_endpoint(id)

    @dbus_method()
    @dbus_errors
    async def SetEndpointFlags(self, id: DBusUInt32, flags: Strings) -> None:
        flags_request(id, flags)
        await self._polkit.authorize(INTERFACE, "SetEndpointFlags", id=str(id))
        await self._mptcp.set_endpoint_flags(id, flags)

    @dbus_method()
    @dbus_errors
    async def FlushEndpoints(self) -> None:
        await self._polkit.authorize(INTERFACE, "FlushEndpoints")
        await self._mptcp.flush_endpoints()

    @dbus_method()
    @dbus_errors
    async def GetConnections(self) -> ConnectionList:
        viewer = await self._polkit.caller_uid()
        return [
            connection_dict(conn, owners) for conn, owners in await self._mptcp.connections(viewer)
        ]

    def _require_apps(self) -> "MptcpApps":
        apps = self._apps()
        if apps is None:
            raise NotSupported("per-unit MPTCP is not configured in this daemon")
        return apps

    @dbus_method()
    @dbus_errors
    async def EnableApp(self, unit: DBusStr) -> None:
        from netpathd.mptcp_apps import check_unit_name  # noqa: PLC0415 - see _apps()

        check_unit_name(unit)
        await self._polkit.authorize(INTERFACE, "EnableApp", unit=unit)
        bpf = self._tcp is not None and await self._tcp.available()
        await self._require_apps().enable(unit, bpf=bpf)

    @dbus_method()
    @dbus_errors
    async def DisableApp(self, unit: DBusStr) -> None:
        from netpathd.mptcp_apps import check_unit_name  # noqa: PLC0415 - see _apps()

        check_unit_name(unit)
        await self._polkit.authorize(INTERFACE, "DisableApp", unit=unit)
        await self._require_apps().disable(unit)
        if self._tcp is not None:
            await self._tcp.forget(unit)

    @dbus_method()
    @dbus_errors
    def ListApps(self) -> Strings:
        return self._require_apps().units()

    # -- signals -----------------------------------------------------------------------

    @dbus_signal()
    def Event(self, kind: str, details: dict[str, Variant]) -> EventBody:
        return kind, details

    def _on_event(self, event: "MptcpEvent") -> None:
        # dbus-fast queues the message and returns: a slow client never blocks the loop.
        self.Event(event.kind, event_details(event.details))

    def _on_change(self, changed: Mapping[str, object]) -> None:
        values: dict[str, Any] = {}
        for name, value in changed.items():
            if name == "Endpoints" and isinstance(value, list):
                values[name] = [endpoint_struct(e) for e in value]
            elif value is not None:
                values[name] = value
        if values:
            self.emit_properties_changed(values)
