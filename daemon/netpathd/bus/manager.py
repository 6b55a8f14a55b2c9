"""D-Bus face of the Manager: ``org.netpathd1.Manager`` on ``/org/netpathd1``."""

# No "from __future__ import annotations" here: dbus-fast reads the annotations
# at runtime, and a postponed "-> None" would be taken for a signature.

from dbus_fast import PropertyAccess
from dbus_fast.annotations import DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from netpathd.bus.errors import dbus_errors
from netpathd.bus.polkit import Authorizer
from netpathd.manager import Manager

INTERFACE = "org.netpathd1.Manager"


class ManagerInterface(ServiceInterface):
    def __init__(self, manager: Manager, polkit: Authorizer) -> None:
        super().__init__(INTERFACE)
        self._manager = manager
        self._polkit = polkit
        manager.observe(self._on_change)

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> DBusStr:
        return self._manager.version

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> DBusStr:
        return self._manager.state.value

    @dbus_property(access=PropertyAccess.READ)
    def LogLevel(self) -> DBusStr:
        return self._manager.log_level

    @dbus_method()
    @dbus_errors
    async def Reload(self) -> None:
        await self._polkit.authorize(INTERFACE, "Reload")
        await self._manager.reload()

    def _on_change(self, names: frozenset[str]) -> None:
        values = {"State": self._manager.state.value, "LogLevel": self._manager.log_level}
        self.emit_properties_changed({name: values[name] for name in sorted(names)})
