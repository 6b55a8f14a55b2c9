"""The TCP → MPTCP members of ``org.netpathd1.Mptcp`` (a mixin of bus/mptcp.py's interface).

``SystemWide``, ``SystemWideExclude`` and ``SystemWideInclude`` are persisted at once, as
``Enabled`` is; ``TcpToMptcpBackend`` and ``TcpToMptcpStats`` read the service;
``RegisterApp`` is what a unit's ``ExecStartPre=+netpathctl mptcp app register`` calls, and
the caller's pid (asked of the bus daemon, so the caller cannot fake it) says which cgroup
to list.  Every setter validates, then authorizes (``org.netpathd1.mptcp.app``), then applies.
"""

# No "from __future__ import annotations": dbus-fast reads the annotations at runtime.

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from dbus_fast import PropertyAccess
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from netpathd.bus.errors import dbus_errors
from netpathd.bus.polkit import Authorizer
from netpathd.errors import NotSupported
from netpathd.model.tcp_to_mptcp import check_entries
from netpathd.tcp_to_mptcp import TcpToMptcp

if TYPE_CHECKING:
    from netpathd.mptcp_apps import MptcpApps

INTERFACE = "org.netpathd1.Mptcp"
Strings = Annotated[list[str], DBusSignature("as")]
Counters = Annotated[dict[str, int], DBusSignature("a{st}")]
Backends = Annotated[dict[str, str], DBusSignature("a{ss}")]


class TcpToMptcpMembers(ServiceInterface):
    """Never exported alone: MptcpInterface derives from it and sets these attributes."""

    _polkit: Authorizer
    _make_apps: "Callable[[], MptcpApps] | None"
    _made_apps: "MptcpApps | None"
    _tcp: TcpToMptcp | None

    def _apps(self) -> "MptcpApps | None":
        """The per-service drop-ins, made at the first call that needs them: mptcp_apps
        (about 1 ms of imports and classes) stays out of the start until then."""
        if self._made_apps is None and self._make_apps is not None:
            self._made_apps = self._make_apps()
        return self._made_apps

    def _require_tcp(self) -> TcpToMptcp:
        if self._tcp is None:
            raise NotSupported("TCP->MPTCP is not configured in this daemon")
        return self._tcp

    @dbus_property()
    @dbus_errors
    def SystemWide(self) -> DBusBool:
        return self._tcp is not None and self._tcp.scope.system_wide

    @SystemWide.setter  # type: ignore[no-redef]
    @dbus_errors
    async def SystemWide(self, value: DBusBool) -> None:
        tcp = self._require_tcp()
        await self._polkit.authorize(INTERFACE, "SystemWide", value=str(value).lower())
        if await tcp.set_scope(dataclasses.replace(tcp.scope, system_wide=value)):
            self.emit_properties_changed({"SystemWide": value})

    @dbus_property()
    @dbus_errors
    def SystemWideExclude(self) -> Strings:
        return list(self._tcp.scope.exclude) if self._tcp is not None else []

    @SystemWideExclude.setter  # type: ignore[no-redef]
    @dbus_errors
    async def SystemWideExclude(self, value: Strings) -> None:
        tcp = self._require_tcp()
        entries = check_entries(value)
        await self._polkit.authorize(INTERFACE, "SystemWideExclude", value=" ".join(entries))
        if await tcp.set_scope(dataclasses.replace(tcp.scope, exclude=entries)):
            self.emit_properties_changed({"SystemWideExclude": list(entries)})

    @dbus_property()
    @dbus_errors
    def SystemWideInclude(self) -> Strings:
        return list(self._tcp.scope.include) if self._tcp is not None else []

    @SystemWideInclude.setter  # type: ignore[no-redef]
    @dbus_errors
    async def SystemWideInclude(self, value: Strings) -> None:
        tcp = self._require_tcp()
        entries = check_entries(value)
        await self._polkit.authorize(INTERFACE, "SystemWideInclude", value=" ".join(entries))
        if await tcp.set_scope(dataclasses.replace(tcp.scope, include=entries)):
            self.emit_properties_changed({"SystemWideInclude": list(entries)})

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    async def TcpToMptcpBackend(self) -> DBusStr:
        if self._tcp is None:
            return "none: TCP->MPTCP is not configured in this daemon"
        return await self._tcp.backend()

    @dbus_property(access=PropertyAccess.READ)
    @dbus_errors
    def TcpToMptcpStats(self) -> Counters:
        stats = self._tcp.stats() if self._tcp is not None else None
        return {"seen": stats.seen, "converted": stats.converted} if stats else {}

    @dbus_method()
    @dbus_errors
    async def RegisterApp(self) -> DBusStr:
        tcp = self._require_tcp()
        await self._polkit.authorize(INTERFACE, "RegisterApp")
        apps = self._apps()
        enabled = [u for u in apps.units() if apps.backend(u) == "bpf"] if apps else []
        return await tcp.register(await self._polkit.caller_pid(), enabled)

    @dbus_method()
    @dbus_errors
    def ListAppBackends(self) -> Backends:
        apps = self._apps()
        return {unit: apps.backend(unit) for unit in apps.units()} if apps else {}
