"""The DNS half of the daemon: connections in, one plan out to the back-end of the mode.

Three layers of connections, highest first: runtime-only ones (set over D-Bus,
gone at restart), persisted ones (set over D-Bus, kept in ``--state-dir``) and
the administrator's (``--config-dir/dns.conf``, never written by netpathd).
The order is `model.dns.order`, kept current one change at a time by
`model.dns_index.DnsIndex`; the domain routes are `model.split_dns`, kept current
the same way by `model.dns_routes.DnsRoutes` once a back-end that routes domains
or a reader asks for them.  This class only feeds
the index the effective connections and the network state, hands a changed plan
to the back-end of the `[main] dns` mode (`dns_backends`, which it never looks
into) and tells observers which properties moved.  Until at least one
connection is configured the resolver file is not touched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from netpathd.dns_backends.resolv_file import ResolverFileBackend, ResolverFileWriter
from netpathd.errors import ConfigError, Failed, InvalidArgument, NotFound
from netpathd.files.atomic import remove_stale_temporaries
from netpathd.files.config import read_config_text
from netpathd.files.resolv_conf import RcManager
from netpathd.files.state import DnsStateStore, StoredDns
from netpathd.model.dns import DnsConnection, DnsResult, GlobalDnsPriority
from netpathd.model.dns_index import DnsIndex
from netpathd.model.dns_plan import DnsMode, DnsPlan, ResolverFile, resolver_file
from netpathd.model.dns_settings import DnsConfig, merge_settings, parse_connections_file
from netpathd.model.dns_sources import SOURCE_PREFIXES
from netpathd.model.links import NetState

if TYPE_CHECKING:
    from netpathd.dns_backends.base import DnsBackend
    from netpathd.model.dns_routes import DnsRoutes

log = logging.getLogger(__name__)

DNS_FILE_NAME = "dns.conf"
Observer = Callable[[frozenset[str]], None]


def read_dns_config(path: Path) -> DnsConfig:
    text = read_config_text(path)
    return DnsConfig() if text is None else parse_connections_file(text, str(path))


class DnsManager:
    def __init__(
        self,
        config_dir: Path,
        state_dir: Path,
        resolv_conf: Path,
        rc_manager: RcManager,
    ) -> None:
        self._admin_path = config_dir / DNS_FILE_NAME
        self._store = DnsStateStore(state_dir)
        self.resolver_file = ResolverFileWriter(resolv_conf, state_dir / "resolv.conf", rc_manager)
        # dns=default until the daemon picks the back-end of the configured mode.
        self._backend: DnsBackend | None = ResolverFileBackend(self.resolver_file)
        self._mode = DnsMode.DEFAULT
        self._index = DnsIndex()
        self._resolver = ResolverFile()
        self._plan: DnsPlan | None = None  # the routed plan of the current state, once asked
        self._routes: DnsRoutes | None = None  # follows the index from the first plan on
        self._applied: DnsPlan | None = None
        self._admin: dict[str, DnsConnection] = {}
        self._admin_global = GlobalDnsPriority()
        self._persisted: dict[str, DnsConnection] = {}
        self._persisted_global = GlobalDnsPriority()
        self._seq_offset = 0  # the persisted layer's creation order starts after the admin's
        self._runtime: dict[str, DnsConnection] = {}
        # Runtime connections fed by a source other than a D-Bus caller (resolvconf, RAs),
        # with that source's name; their names carry the source's prefix.
        self._sourced: dict[str, tuple[DnsConnection, str]] = {}
        self._next_seq = 0  # above every connection's created_seq
        self._started = False  # nothing is written before the first network state is known
        self._observers: list[Observer] = []

    # -- reading ---------------------------------------------------------------

    @property
    def result(self) -> DnsResult:
        return self._index.result if self._started else DnsResult()

    @property
    def resolver(self) -> ResolverFile:
        """What the resolver file says (cheap: no domain routes are built for it)."""
        return self._resolver

    @property
    def plan(self) -> DnsPlan:
        if not self._started:
            return DnsPlan()
        if self._plan is None:
            if self._routes is None:
                # Loaded on demand: in dns=default only ExplainDomains asks for routes.
                from netpathd.model.dns_routes import DnsRoutes  # noqa: PLC0415

                self._routes = DnsRoutes()
            self._plan = self._routes.plan(self._index, self._mode)
        return self._plan

    @property
    def resolv_conf(self) -> Path:
        return self.resolver_file.path

    @property
    def rc_manager(self) -> RcManager:
        return self.resolver_file.rc_manager

    @rc_manager.setter
    def rc_manager(self, rc_manager: RcManager) -> None:
        self.resolver_file.rc_manager = rc_manager

    @property
    def mode(self) -> DnsMode:
        return self._mode

    @property
    def backend_state(self) -> str:
        return self._backend.state if self._backend is not None else "starting"

    @property
    def global_priority(self) -> GlobalDnsPriority:
        persisted, admin = self._persisted_global, self._admin_global
        return GlobalDnsPriority(persisted.ipv4 or admin.ipv4, persisted.ipv6 or admin.ipv6)

    def connections(self) -> list[tuple[DnsConnection, str]]:
        """Every effective connection in creation order, with its layer."""
        names = self._admin.keys() | self._persisted.keys() | self._runtime.keys()
        names |= self._sourced.keys()
        layers = [self._effective(name) for name in names]
        found = [layer for layer in layers if layer is not None]
        return sorted(found, key=lambda item: (item[0].created_seq, item[0].name))

    def _effective(self, name: str) -> tuple[DnsConnection, str] | None:
        """The connection of the highest layer that has `name`: sourced, runtime, state, config."""
        if name in self._sourced:
            return self._sourced[name]
        for layer, conns in (
            ("runtime", self._runtime),
            ("state", self._persisted),
            ("config", self._admin),
        ):
            if name in conns:
                return conns[name], layer
        return None

    def link_exists(self, name: str) -> bool:
        return self._index.state.link_by_name(name) is not None

    def link_kind(self, name: str) -> str:
        """The kind rtnetlink gave the link (``tun``, ``wireguard``...); "" if none or unseen."""
        link = self._index.state.link_by_name(name)
        return link.kind if link is not None else ""

    def sourced(self, name: str) -> DnsConnection | None:
        found = self._sourced.get(name)
        return found[0] if found is not None else None

    def next_seq(self) -> int:
        return self._next_seq

    def is_active(self, conn: DnsConnection) -> bool:
        link = self._index.state.link_by_name(conn.interface_name)
        return link is not None and link.up

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    # -- loading ---------------------------------------------------------------

    def remove_stale_temporaries(self) -> None:
        """Remove what writes interrupted by a kill left (at start, before any write)."""
        paths = [self.resolver_file.private_copy, self.resolv_conf]
        if self.rc_manager is RcManager.FILE:  # written through the symlink, where it ends
            paths.append(Path(os.path.realpath(self.resolv_conf)))
        remove_stale_temporaries(*dict.fromkeys(paths))
        self._store.remove_stale_temporaries()

    def load(self) -> None:
        """At start: read the admin's file and the state, each all or nothing, then raise.

        A bad file is left out while the other still loads.  A bad state file also
        blocks persisting until it is fixed: writing over it would throw away every
        connection it still holds.
        """
        errors: list[ConfigError] = []
        admin, persisted = DnsConfig(), None
        try:
            admin = read_dns_config(self._admin_path)
        except ConfigError as error:
            errors.append(error)
        try:
            persisted = self._store.read()
        except ConfigError as error:
            errors.append(error)
        self._adopt(admin, persisted)
        if errors:
            raise errors[0]

    def prepare_reload(self, rc_manager: RcManager) -> Callable[[], None]:
        """Read both; return what adopts them, or raise having changed nothing."""
        admin = read_dns_config(self._admin_path)
        persisted = self._store.read()

        def adopt() -> None:
            self.rc_manager = rc_manager
            self._adopt(admin, persisted)

        return adopt

    def _adopt(self, admin: DnsConfig, persisted: StoredDns | None) -> None:
        """``persisted`` None: the state could not be read, keep what was loaded."""
        self._admin = {conn.name: conn for conn in admin.connections}
        self._admin_global = admin.global_priority
        if persisted is not None:
            # Creation order: the admin's connections first, then the persisted ones.
            self._store.adopt(persisted)
            self._seq_offset = len(admin.connections)
            self._persisted_global = persisted.global_priority
            self._persisted = {
                conn.name: dataclasses.replace(conn, created_seq=seq + self._seq_offset)
                for conn, seq in persisted.connections
            }
        state, self._index = self._index.state, DnsIndex()
        self._index.set_global_priority(self.global_priority)
        self._index.update_state(state)
        for conn, _ in self.connections():
            self._index.put(conn)
        self._next_seq = max(
            (conn.created_seq + 1 for conn, _ in self.connections()), default=self._next_seq
        )
        self._recompute()

    # -- changes -----------------------------------------------------------------

    def update_network(self, state: NetState) -> None:
        """Called with the watcher's coalesced snapshots; the first one enables writing."""
        self._index.update_state(state)
        self._started = True
        self._recompute()

    def checked_connection(self, name: str, settings: Mapping[str, object]) -> DnsConnection:
        """The connection ``settings`` would make of ``name``; InvalidArgument if none."""
        if name.startswith(SOURCE_PREFIXES):
            raise InvalidArgument(
                f"connection {name!r}: names starting {' or '.join(SOURCE_PREFIXES)} are "
                "reserved for resolvconf records and router advertisements"
            )
        existing = self._effective(name)
        return merge_settings(
            existing[0] if existing is not None else None,
            name,
            settings,
            created_seq=self._next_seq,
        )

    def set_connection(self, name: str, settings: Mapping[str, object], runtime: bool) -> None:
        """Create or update; invalid settings raise before anything changes."""
        conn = self.checked_connection(name, settings)
        if runtime:
            self._runtime[name] = conn
        else:
            # Write first, then adopt: a failed write leaves memory and disk agreeing.
            self._store.save_connection(conn, conn.created_seq - self._seq_offset)
            self._persisted[name] = conn
            self._runtime.pop(name, None)
        self._changed(name)

    def set_sourced(self, conn: DnsConnection, source: str) -> None:
        """Add or replace a connection of ``source`` (already validated)."""
        if self._sourced.get(conn.name) == (conn, source):
            return
        self._sourced[conn.name] = (conn, source)
        self._changed(conn.name)

    def remove_sourced(self, name: str) -> bool:
        """False when there was nothing to remove."""
        if self._sourced.pop(name, None) is None:
            return False
        self._changed(name)
        return True

    def check_removal(self, name: str) -> bool:
        """Raise unless ``name`` can be removed; True when that changes runtime state only."""
        if name in self._sourced:
            return True
        if name in self._admin:
            raise Failed(
                f"connection {name!r} is defined in {self._admin_path}; "
                "remove it there and call Reload()"
            )
        persisted = name in self._persisted
        if not persisted and name not in self._runtime:
            raise NotFound(f"no DNS connection named {name!r}")
        return not persisted

    def remove_connection(self, name: str) -> None:
        self.check_removal(name)
        if name in self._persisted:
            self._store.remove_connection(name)
            del self._persisted[name]
        self._sourced.pop(name, None)
        self._runtime.pop(name, None)
        self._changed(name)

    def set_global_priority(self, priority: GlobalDnsPriority) -> None:
        if priority == self._persisted_global:
            return
        self._store.save_global_priority(priority)
        self._persisted_global = priority
        self._index.set_global_priority(self.global_priority)
        self._recompute(extra=frozenset({"GlobalDnsPriority"}))

    def hold(self, placeholder: DnsBackend) -> None:
        """Before start: use a back-end that has nothing to undo (set_backend replaces it)."""
        self._backend = placeholder
        self._mode = placeholder.mode

    async def set_backend(self, backend: DnsBackend) -> None:
        """Switch modes: the old back-end undoes what it configured, the new one gets the plan."""
        old, self._backend = self._backend, None
        if old is not None:
            await old.close()
        changed = {"BackendState"} | ({"Mode"} if backend.mode is not self._mode else set())
        self._mode = backend.mode
        self._backend = backend
        self._applied = None
        log.info("DNS mode %s", backend.mode.value)
        self._recompute(extra=frozenset(changed))

    async def close(self) -> None:
        """At exit the back-end stops its processes and reverts what it configured."""
        if self._backend is not None:
            await self._backend.close()
            self._backend = None

    def backend_state_changed(self, _state: str) -> None:
        self._notify(frozenset({"BackendState"}))

    # -- effects -------------------------------------------------------------------

    def _changed(self, name: str) -> None:
        """The layers of ``name`` changed: the index takes its effective connection."""
        effective = self._effective(name)
        if effective is None:
            self._index.remove(name)
        else:
            self._index.put(effective[0])
            self._next_seq = max(self._next_seq, effective[0].created_seq + 1)
        self._recompute()

    def _recompute(self, extra: frozenset[str] = frozenset()) -> None:
        if not self._started:
            return
        index = self._index
        old = self._resolver
        self._resolver = resolver_file(index.nameservers, index.searches, index.options, self._mode)
        self._plan = None
        if self._backend is not None:
            # A back-end that does not route domains gets the plan without its routes:
            # they cost O(connections) and only ExplainDomains would read them.
            plan = (
                self.plan
                if self._backend.routes_domains
                else DnsPlan(self._mode, index.result, resolver=self._resolver)
            )
            if plan != self._applied:
                self._backend.apply(plan)  # Failed from a file write reaches the caller
                self._applied = plan
        changed = set(extra)
        if old.nameservers != self._resolver.nameservers:
            changed.add("Nameservers")
        if old.searches != self._resolver.searches:
            changed.add("SearchDomains")
        if changed:
            self._notify(frozenset(changed))

    def _notify(self, names: frozenset[str]) -> None:
        for observer in self._observers:
            observer(names)
