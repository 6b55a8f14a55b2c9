"""systemd as seen over D-Bus: the `SystemdUnits` that netpathd.mptcp_apps needs.

systemd serves ``org.freedesktop.systemd1`` on the system bus, the one netpathd serves on,
so the daemon's own connection is used (no second connection, no ``systemctl`` subprocess
as mptcpd's mptcpize runs).  Signatures follow systemd's src/core/dbus-manager.c
(``GetUnit(s) -> o`` fails with ``org.freedesktop.systemd1.NoSuchUnit`` for a unit not
loaded; ``LoadUnit(s) -> o`` always answers, with ``LoadState`` "not-found" for a unit that
has no file), src/core/dbus-unit.c (``LoadState``, ``FragmentPath``) and
src/core/dbus-execute.c (``ExecStart a(sasbttttuii)``, ``ExecStartEx a(sasasttttuii)``).
Every call is bounded by a timeout: a hung systemd must not hang a D-Bus handler forever.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from netpathd.errors import Failed, NotFound, NotSupported

if TYPE_CHECKING:
    from netpathd.mptcp_apps import ServiceUnit

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
CALL_TIMEOUT = 25.0  # systemd's own default D-Bus timeout is 25 s (DEFAULT_TIMEOUT_USEC)
NOT_RUNNING = "systemd is not running on this bus: per-unit MPTCP needs it"


class _CallError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})")
        self.name = name
        self.text = text


class SystemdClient:
    """Calls org.freedesktop.systemd1 over an existing connection."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    async def _call(  # noqa: PLR0917
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        destination: str = SYSTEMD,
    ) -> list[Any]:
        message = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
        try:
            reply = await asyncio.wait_for(self._bus.call(message), CALL_TIMEOUT)
        except TimeoutError:
            raise Failed(
                f"{destination} did not answer {member} within {CALL_TIMEOUT:g}s"
            ) from None
        if reply is None:
            raise Failed(f"{destination}: no reply to {member}")
        if reply.message_type is MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            raise _CallError(reply.error_name or "", text)
        return list(reply.body)

    async def _require_systemd(self) -> None:
        (present,) = await self._call(
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            [SYSTEMD],
            destination="org.freedesktop.DBus",
        )
        if not present:
            raise NotSupported(NOT_RUNNING)

    async def _get_all(self, path: str, interface: str) -> dict[str, Any]:
        (values,) = await self._call(
            path, "org.freedesktop.DBus.Properties", "GetAll", "s", [interface]
        )
        return {name: variant.value for name, variant in values.items()}

    async def service(self, name: str) -> ServiceUnit:
        try:
            await self._require_systemd()
            try:
                (path,) = await self._call(MANAGER_PATH, MANAGER, "GetUnit", "s", [name])
            except _CallError as error:
                if error.name != NO_SUCH_UNIT:
                    raise
                (path,) = await self._call(MANAGER_PATH, MANAGER, "LoadUnit", "s", [name])
            unit = await self._get_all(path, UNIT)
            if unit.get("LoadState") == "not-found":
                raise NotFound(f"no such unit: {name}")
            if unit.get("LoadState") != "loaded":
                raise Failed(f"{name} is not loaded by systemd: {unit.get('LoadState')}")
            service = await self._get_all(path, SERVICE)
        except _CallError as error:
            if error.name == NO_SUCH_UNIT:
                raise NotFound(f"no such unit: {name}") from None
            raise Failed(f"systemd refused to describe {name}: {error}") from None
        from netpathd.mptcp_apps import ServiceUnit, exec_commands  # noqa: PLC0415 - app calls only

        return ServiceUnit(
            name=name,
            fragment_path=str(unit.get("FragmentPath", "")),
            exec_start=exec_commands(service.get("ExecStart", []), service.get("ExecStartEx")),
        )

    async def control_group(self, name: str) -> str:
        """The cgroup path of a running unit (``ControlGroup``); NotFound when it has none."""
        try:
            await self._require_systemd()
            (path,) = await self._call(MANAGER_PATH, MANAGER, "GetUnit", "s", [name])
            (value,) = await self._call(
                path, "org.freedesktop.DBus.Properties", "Get", "ss", [UNIT, "ControlGroup"]
            )
        except _CallError as error:
            if error.name == NO_SUCH_UNIT:
                raise NotFound(f"{name} is not loaded") from None
            raise Failed(f"systemd refused to describe {name}: {error}") from None
        cgroup = str(value.value)
        if not cgroup:
            raise NotFound(f"{name} is not running (no cgroup)")
        return cgroup

    async def reload(self) -> None:
        try:
            await self._call(MANAGER_PATH, MANAGER, "Reload")
        except _CallError as error:
            raise Failed(f"systemd refused Reload(): {error}") from None
