"""D-Bus face of the DNS manager: ``org.netpathd1.Dns`` on ``/org/netpathd1``."""

# No "from __future__ import annotations": dbus-fast reads the annotations at runtime.

from typing import TYPE_CHECKING, Annotated, Any

from dbus_fast import PropertyAccess, Variant
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from netpathd.bus.errors import dbus_errors
from netpathd.bus.polkit import Authorizer
from netpathd.dns_manager import DnsManager
from netpathd.errors import InvalidArgument
from netpathd.model.dns import DnsEntry, effective_priority
from netpathd.model.dns_settings import SETTINGS_SIGNATURES, make_global_priority, to_settings
from netpathd.model.links import Family

if TYPE_CHECKING:
    from netpathd.model.split_dns import DomainRoute

INTERFACE = "org.netpathd1.Dns"

Settings = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
Strings = Annotated[list[str], DBusSignature("as")]
PriorityPair = Annotated[list[int], DBusSignature("(ii)")]
ConnectionList = Annotated[list[list[Any]], DBusSignature("a(sa{sv})")]
ExplainList = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]


def unwrap(settings: dict[str, Variant]) -> dict[str, object]:
    """The values of an ``a{sv}``, each key in exactly its documented type.

    NetworkManager takes only the GVariant type of each property too: a ``u`` or
    ``x`` priority would otherwise slip through as a Python int, and a ``g`` or
    ``o`` as a str.  Unknown keys are left for the model to refuse by name.
    """
    for key, variant in settings.items():
        expected = SETTINGS_SIGNATURES.get(key)
        if expected is not None and variant.signature != expected:
            raise InvalidArgument(f"{key}: must be of type {expected!r}, got {variant.signature!r}")
    return {key: variant.value for key, variant in settings.items()}


def explain_entry(entry: DnsEntry, source: str) -> dict[str, Variant]:
    return {
        "connection": Variant("s", entry.connection),
        "source": Variant("s", source),
        "interface": Variant("s", entry.interface_name),
        "family": Variant("s", f"ipv{entry.family.value}"),
        "priority": Variant("i", entry.priority),
        "priority-source": Variant("s", entry.priority_source),
        "rank": Variant("s", entry.rank.value if entry.rank is not None else ""),
        "status": Variant("s", entry.status.value),
        "included": Variant("b", entry.included),
        "reason": Variant("s", entry.reason),
        "servers": Variant("as", list(entry.servers)),
        "duplicates": Variant("as", list(entry.duplicates)),
    }


def explain_route(route: "DomainRoute") -> dict[str, Variant]:
    losers = [
        {
            "connection": Variant("s", loser.connection),
            "interface": Variant("s", loser.interface_name),
            "priority": Variant("i", loser.priority),
            "reason": Variant("s", loser.reason),
        }
        for loser in route.losers
    ]
    return {
        "domain": Variant("s", route.domain),
        "connection": Variant("s", route.connection),
        "interface": Variant("s", route.interface_name),
        "servers": Variant("as", list(route.servers)),
        "priority": Variant("i", route.priority),
        "reason": Variant("s", route.reason),
        "losers": Variant("aa{sv}", losers),
    }


class DnsInterface(ServiceInterface):
    def __init__(self, dns: DnsManager, polkit: Authorizer) -> None:
        super().__init__(INTERFACE)
        self._dns = dns
        self._polkit = polkit
        dns.observe(self._on_change)

    @dbus_method()
    @dbus_errors
    async def SetConnection(self, name: DBusStr, settings: Settings) -> None:
        """Create or update a connection and persist it."""
        self._dns.checked_connection(name, unwrap(settings))
        await self._polkit.authorize(INTERFACE, "SetConnection", connection=name)
        self._dns.set_connection(name, unwrap(settings), runtime=False)

    @dbus_method()
    @dbus_errors
    async def SetConnectionRuntime(self, name: DBusStr, settings: Settings) -> None:
        """Like SetConnection, but gone when the daemon restarts."""
        self._dns.checked_connection(name, unwrap(settings))
        await self._polkit.authorize(INTERFACE, "SetConnectionRuntime", connection=name)
        self._dns.set_connection(name, unwrap(settings), runtime=True)

    @dbus_method()
    @dbus_errors
    async def RemoveConnection(self, name: DBusStr) -> None:
        runtime_only = self._dns.check_removal(name)
        await self._polkit.authorize(
            INTERFACE, "RemoveConnection", runtime_only=runtime_only, connection=name
        )
        if runtime_only and not self._dns.check_removal(name):  # persisted while we asked
            await self._polkit.authorize(INTERFACE, "RemoveConnection", connection=name)
        self._dns.remove_connection(name)

    @dbus_method()
    @dbus_errors
    async def AddResolvconf(
        self,
        key: DBusStr,
        text: DBusStr,
        metric: DBusUInt32,
        exclusive: DBusBool,
        private: DBusBool,
    ) -> None:
        """``resolvconf [-m METRIC] [-x] [-p] -a KEY < TEXT``: a runtime connection."""
        # The first record loads its adapter: most daemons never get one (import footprint).
        from netpathd.dns_resolvconf import add_record, record_connection  # noqa: PLC0415
        from netpathd.model.resolvconf import Flags  # noqa: PLC0415

        flags = Flags(metric, exclusive, private)
        record_connection(self._dns, key, text, flags)  # bad input is refused before polkit
        await self._polkit.authorize(INTERFACE, "AddResolvconf", key=key)
        # Built again: the links may have changed while polkit answered.
        add_record(self._dns, record_connection(self._dns, key, text, flags))

    @dbus_method()
    @dbus_errors
    async def RemoveResolvconf(self, key: DBusStr) -> None:
        """``resolvconf -d KEY``: NotFound when there is no such record."""
        from netpathd.dns_resolvconf import check_record, remove_record  # noqa: PLC0415

        check_record(self._dns, key)
        await self._polkit.authorize(INTERFACE, "RemoveResolvconf", key=key)
        remove_record(self._dns, key)

    @dbus_method()
    @dbus_errors
    def GetConnections(self) -> ConnectionList:
        result = []
        for conn, layer in self._dns.connections():
            settings = {
                key: Variant(SETTINGS_SIGNATURES[key], value)
                for key, value in to_settings(conn).items()
            }
            settings["active"] = Variant("b", self._dns.is_active(conn))
            settings["source"] = Variant("s", layer)
            settings["metric"] = Variant("u", conn.metric)
            for family in Family:
                priority, _ = effective_priority(conn, family, self._dns.global_priority)
                settings[f"ipv{family.value}.effective-dns-priority"] = Variant("i", priority)
            result.append([conn.name, settings])
        return result

    @dbus_method()
    @dbus_errors
    def Explain(self) -> ExplainList:
        """Every candidate entry in order: priority, rank, included or not, and why."""
        sources = {conn.name: layer for conn, layer in self._dns.connections()}
        return [explain_entry(e, sources.get(e.connection, "")) for e in self._dns.result.entries]

    @dbus_method()
    @dbus_errors
    def ExplainDomains(self) -> ExplainList:
        """Per domain ("." for all others): the connection that answers it, and the losers."""
        return [explain_route(route) for route in self._dns.plan.routes]

    @dbus_property(access=PropertyAccess.READ)
    def Nameservers(self) -> Strings:
        return list(self._dns.resolver.nameservers)

    @dbus_property(access=PropertyAccess.READ)
    def SearchDomains(self) -> Strings:
        return list(self._dns.resolver.searches)

    @dbus_property(access=PropertyAccess.READ)
    def Mode(self) -> DBusStr:
        return self._dns.mode.value

    @dbus_property(access=PropertyAccess.READ)
    def BackendState(self) -> DBusStr:
        return self._dns.backend_state

    @dbus_property(access=PropertyAccess.READ)
    def ResolvConfPath(self) -> DBusStr:
        return str(self._dns.resolv_conf)

    @dbus_property(access=PropertyAccess.READ)
    def RcManager(self) -> DBusStr:
        return self._dns.rc_manager.value

    @dbus_property()
    def GlobalDnsPriority(self) -> PriorityPair:
        priority = self._dns.global_priority
        return [priority.ipv4, priority.ipv6]

    @GlobalDnsPriority.setter  # type: ignore[no-redef]
    @dbus_errors
    async def GlobalDnsPriority(self, value: PriorityPair) -> None:
        # dbus-fast has already refused any variant that is not "(ii)"
        ipv4, ipv6 = value
        priority = make_global_priority(ipv4, ipv6)
        await self._polkit.authorize(INTERFACE, "GlobalDnsPriority", value=f"{ipv4} {ipv6}")
        self._dns.set_global_priority(priority)

    def _on_change(self, names: frozenset[str]) -> None:
        values: dict[str, Any] = {
            "Nameservers": list(self._dns.resolver.nameservers),
            "SearchDomains": list(self._dns.resolver.searches),
            "Mode": self._dns.mode.value,
            "BackendState": self._dns.backend_state,
            "GlobalDnsPriority": [
                self._dns.global_priority.ipv4,
                self._dns.global_priority.ipv6,
            ],
        }
        self.emit_properties_changed({name: values[name] for name in sorted(names)})
