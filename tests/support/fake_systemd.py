"""A small stand-in for ``org.freedesktop.systemd1`` on a private bus.

systemd cannot run units here (it is not PID 1), so EnableApp's happy path is tested against
this fake, which answers with systemd's own names, signatures and errors for what netpathd
uses: Manager ``GetUnit(s) -> o`` (``org.freedesktop.systemd1.NoSuchUnit`` "Unit X not
loaded." for a unit not loaded), ``LoadUnit(s) -> o`` (answers for any name; a unit without a
file gets ``LoadState`` "not-found"), ``Reload()`` (systemd src/core/dbus-manager.c); unit
objects at ``/org/freedesktop/systemd1/unit/<bus_label_escape(name)>`` with Unit ``Id``,
``LoadState``, ``FragmentPath`` (src/core/dbus-unit.c) and Service ``Type``, ``ExecStart``
``a(sasbttttuii)``, ``ExecStartEx`` ``a(sasasttttuii)`` (src/core/dbus-service.c,
dbus-execute.c).  The bus policy a test must add for it is `POLICY`.
"""

# No "from __future__ import annotations": dbus-fast reads the annotations at runtime.

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import DBusError, NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

NAME = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
POLICY_FILE = "org.freedesktop.systemd1.conf"
POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.freedesktop.systemd1"/>
    <allow send_destination="org.freedesktop.systemd1"/>
  </policy>
</busconfig>
"""

ExecList = Annotated[list[list[Any]], DBusSignature("a(sasbttttuii)")]
ExecExList = Annotated[list[list[Any]], DBusSignature("a(sasasttttuii)")]


def unit_path(name: str) -> str:
    """systemd's unit_dbus_path(): bus_label_escape() keeps [A-Za-z0-9], the rest is _xx."""
    label = "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)
    return f"{MANAGER_PATH}/unit/{label}"


@dataclass
class FakeCommand:
    path: str
    argv: list[str]
    flags: Sequence[str] = ()  # ExecStartEx words: ignore-failure, privileged, ...


@dataclass
class FakeUnit:
    name: str
    fragment_path: str
    commands: list[FakeCommand] = field(default_factory=list)
    type: str = "simple"
    load_state: str = "loaded"


class _Unit(ServiceInterface):
    def __init__(self, unit: FakeUnit) -> None:
        super().__init__("org.freedesktop.systemd1.Unit")
        self.unit = unit

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> DBusStr:
        return self.unit.name

    @dbus_property(access=PropertyAccess.READ)
    def LoadState(self) -> DBusStr:
        return self.unit.load_state

    @dbus_property(access=PropertyAccess.READ)
    def FragmentPath(self) -> DBusStr:
        return self.unit.fragment_path


class _Service(ServiceInterface):
    def __init__(self, unit: FakeUnit) -> None:
        super().__init__("org.freedesktop.systemd1.Service")
        self.unit = unit

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return self.unit.type

    @dbus_property(access=PropertyAccess.READ)
    def ExecStart(self) -> ExecList:
        return [
            [c.path, c.argv, "ignore-failure" in c.flags, 0, 0, 0, 0, 0, 0, 0]
            for c in self.unit.commands
        ]

    @dbus_property(access=PropertyAccess.READ)
    def ExecStartEx(self) -> ExecExList:
        return [[c.path, c.argv, list(c.flags), 0, 0, 0, 0, 0, 0, 0] for c in self.unit.commands]


class _Manager(ServiceInterface):
    def __init__(self, fake: "FakeSystemd") -> None:
        super().__init__("org.freedesktop.systemd1.Manager")
        self.fake = fake

    @dbus_method()
    def GetUnit(self, name: DBusStr) -> DBusObjectPath:
        if name not in self.fake.loaded:
            raise DBusError("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        return unit_path(name)

    @dbus_method()
    def LoadUnit(self, name: DBusStr) -> DBusObjectPath:
        if name not in self.fake.loaded:
            unit = self.fake.units.get(name) or FakeUnit(name, "", load_state="not-found")
            self.fake.export(unit)
        return unit_path(name)

    @dbus_method()
    def Reload(self) -> None:
        self.fake.reloads += 1
        if self.fake.refuse_reload:
            raise DBusError("org.freedesktop.DBus.Error.AccessDenied", "Access denied")


class FakeSystemd:
    """``units`` exist on "disk"; ``loaded`` ones answer GetUnit, the rest need LoadUnit."""

    def __init__(self, units: Sequence[FakeUnit], loaded: Sequence[str] = ()) -> None:
        self.units = {unit.name: unit for unit in units}
        self.loaded: set[str] = set()
        self.reloads = 0
        self.refuse_reload = False
        self._bus: MessageBus | None = None
        self._preload = list(loaded)

    def export(self, unit: FakeUnit) -> None:
        assert self._bus is not None
        self._bus.export(unit_path(unit.name), _Unit(unit))
        if unit.load_state != "not-found":
            self._bus.export(unit_path(unit.name), _Service(unit))
            self.loaded.add(unit.name)

    async def start(self, address: str) -> None:
        self._bus = await asyncio.wait_for(MessageBus(bus_address=address).connect(), 10)
        self._bus.export(MANAGER_PATH, _Manager(self))
        for name in self._preload:
            self.export(self.units[name])
        reply = await self._bus.request_name(NAME, NameFlag.DO_NOT_QUEUE)
        assert reply is RequestNameReply.PRIMARY_OWNER, reply

    def stop(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
