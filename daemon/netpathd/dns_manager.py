"""The DNS half of the daemon: connections in, one plan out to the back-end of the mode.

Three layers of connections, highest first: runtime-only ones (set over D-Bus,
gone at restart), persisted ones (set over D-Bus, kept in ``--state-dir``) and
the administrator's (``--config-dir/dns.conf``, never written by netpathd).
The order and the domain routes are `model.dns_plan.plan`, a pure function; this
class only feeds it the current network state, hands a changed plan to the
back-end of the `[main] dns` mode (`dns_backends`, which it never looks into) and
tells observers which properties moved.  Until at least one connection is
configured the resolver file is not touched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from netpathd.dns_backends.base import DnsBackend
from netpathd.dns_backends.resolv_file import ResolverFileBackend, ResolverFileWriter
from netpathd.errors import ConfigError, Failed, InvalidArgument, NotFound
from netpathd.files.atomic import remove_stale_temporaries
from netpathd.files.config import read_config_text
from netpathd.files.resolv_conf import RcManager
from netpathd.files.state import save_state
from netpathd.model import ra_dns, resolvconf
from netpathd.model.dns import DnsConnection, DnsResult, GlobalDnsPriority
from netpathd.model.dns_plan import DnsMode, DnsPlan, plan
from netpathd.model.dns_settings import (
    DnsConfig,
    merge_settings,
    parse_connections_file,
    render_connections_file,
)
from netpathd.model.links import NetState

log = logging.getLogger(__name__)

DNS_FILE_NAME = "dns.conf"
SOURCE_PREFIXES = (resolvconf.PREFIX, ra_dns.PREFIX)  # names of the sourced layer only
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
        self._state_path = state_dir / DNS_FILE_NAME
        self.resolver_file = ResolverFileWriter(resolv_conf, state_dir / "resolv.conf", rc_manager)
        # dns=default until the daemon picks the back-end of the configured mode.
        self._backend: DnsBackend | None = ResolverFileBackend(self.resolver_file)
        self._mode = DnsMode.DEFAULT
        self._plan = DnsPlan()
        self._applied: DnsPlan | None = None
        self._admin = DnsConfig()
        self._persisted = DnsConfig()
        self._runtime: dict[str, DnsConnection] = {}
        # Runtime connections fed by a source other than a D-Bus caller (resolvconf, RAs),
        # with that source's name; their names carry the source's prefix.
        self._sourced: dict[str, tuple[DnsConnection, str]] = {}
        self._state_file_error: ConfigError | None = None
        self._state = NetState()
        self._started = False  # nothing is written before the first network state is known
        self._observers: list[Observer] = []

    # -- reading ---------------------------------------------------------------

    @property
    def result(self) -> DnsResult:
        return self._plan.order

    @property
    def plan(self) -> DnsPlan:
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
        persisted, admin = self._persisted.global_priority, self._admin.global_priority
        return GlobalDnsPriority(persisted.ipv4 or admin.ipv4, persisted.ipv6 or admin.ipv6)

    def connections(self) -> list[tuple[DnsConnection, str]]:
        """Every effective connection in creation order, with its layer."""
        layers: dict[str, tuple[DnsConnection, str]] = {}
        for layer, conns in (
            ("config", self._admin.connections),
            ("state", self._persisted.connections),
            ("runtime", tuple(self._runtime.values())),
        ):
            for conn in conns:
                layers[conn.name] = (conn, layer)
        layers.update(self._sourced)
        return sorted(layers.values(), key=lambda item: (item[0].created_seq, item[0].name))

    def link_exists(self, name: str) -> bool:
        return self._state.link_by_name(name) is not None

    def sourced(self, name: str) -> DnsConnection | None:
        found = self._sourced.get(name)
        return found[0] if found is not None else None

    def next_seq(self) -> int:
        return max((conn.created_seq for conn, _ in self.connections()), default=-1) + 1

    def is_active(self, conn: DnsConnection) -> bool:
        link = self._state.link_by_name(conn.interface_name)
        return link is not None and link.up

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    # -- loading ---------------------------------------------------------------

    def remove_stale_temporaries(self) -> None:
        """Remove what writes interrupted by a kill left (at start, before any write)."""
        paths = [self._state_path, self.resolver_file.private_copy, self.resolv_conf]
        if self.rc_manager is RcManager.FILE:  # written through the symlink, where it ends
            paths.append(Path(os.path.realpath(self.resolv_conf)))
        remove_stale_temporaries(*dict.fromkeys(paths))

    def load(self) -> None:
        """At start: read both files, each all or nothing, then raise the first error.

        A bad file is left out while the other still loads.  A bad state file also
        blocks persisting until it is fixed: writing over it would throw away every
        connection it still holds.
        """
        errors: list[ConfigError] = []
        admin, persisted = self._admin, None
        try:
            admin = read_dns_config(self._admin_path)
        except ConfigError as error:
            errors.append(error)
        try:
            persisted = self._read_state()
        except ConfigError as error:
            errors.append(error)
        self._adopt(admin, persisted)
        if errors:
            raise errors[0]

    def prepare_reload(self, rc_manager: RcManager) -> Callable[[], None]:
        """Read both files; return what adopts them, or raise having changed nothing."""
        admin = read_dns_config(self._admin_path)
        persisted = self._read_state()

        def adopt() -> None:
            self.rc_manager = rc_manager
            self._adopt(admin, persisted)

        return adopt

    def _read_state(self) -> DnsConfig:
        try:
            persisted = read_dns_config(self._state_path)
        except ConfigError as error:
            self._state_file_error = error
            raise
        self._state_file_error = None
        return persisted

    def _adopt(self, admin: DnsConfig, persisted: DnsConfig | None) -> None:
        """``persisted`` None: the state file could not be read, keep what was loaded."""
        self._admin = admin
        if persisted is not None:
            # Creation order: the admin's connections first, then the persisted ones.
            offset = len(admin.connections)
            self._persisted = dataclasses.replace(
                persisted,
                connections=tuple(
                    dataclasses.replace(conn, created_seq=conn.created_seq + offset)
                    for conn in persisted.connections
                ),
            )
        self._recompute()

    # -- changes -----------------------------------------------------------------

    def update_network(self, state: NetState) -> None:
        """Called with the watcher's coalesced snapshots; the first one enables writing."""
        self._state = state
        self._started = True
        self._recompute()

    def checked_connection(self, name: str, settings: Mapping[str, object]) -> DnsConnection:
        """The connection ``settings`` would make of ``name``; InvalidArgument if none."""
        if name.startswith(SOURCE_PREFIXES):
            raise InvalidArgument(
                f"connection {name!r}: names starting {' or '.join(SOURCE_PREFIXES)} are "
                "reserved for resolvconf records and router advertisements"
            )
        conns = [conn for conn, _ in self.connections()]
        existing = next((conn for conn in conns if conn.name == name), None)
        next_seq = max((conn.created_seq for conn in conns), default=-1) + 1
        return merge_settings(existing, name, settings, created_seq=next_seq)

    def set_connection(self, name: str, settings: Mapping[str, object], runtime: bool) -> None:
        """Create or update; invalid settings raise before anything changes."""
        conn = self.checked_connection(name, settings)
        if runtime:
            self._runtime[name] = conn
        else:
            kept = tuple(c for c in self._persisted.connections if c.name != name)
            self._persist(dataclasses.replace(self._persisted, connections=(*kept, conn)))
            self._runtime.pop(name, None)
        self._recompute()

    def set_sourced(self, conn: DnsConnection, source: str) -> None:
        """Add or replace a connection of ``source`` (already validated)."""
        if self._sourced.get(conn.name) == (conn, source):
            return
        self._sourced[conn.name] = (conn, source)
        self._recompute()

    def remove_sourced(self, name: str) -> bool:
        """False when there was nothing to remove."""
        if self._sourced.pop(name, None) is None:
            return False
        self._recompute()
        return True

    def check_removal(self, name: str) -> bool:
        """Raise unless ``name`` can be removed; True when that changes runtime state only."""
        if name in self._sourced:
            return True
        if any(conn.name == name for conn in self._admin.connections):
            raise Failed(
                f"connection {name!r} is defined in {self._admin_path}; "
                "remove it there and call Reload()"
            )
        persisted = any(conn.name == name for conn in self._persisted.connections)
        if not persisted and name not in self._runtime:
            raise NotFound(f"no DNS connection named {name!r}")
        return not persisted

    def remove_connection(self, name: str) -> None:
        self.check_removal(name)
        self._sourced.pop(name, None)
        self._runtime.pop(name, None)
        kept = tuple(c for c in self._persisted.connections if c.name != name)
        if len(kept) != len(self._persisted.connections):
            self._persist(dataclasses.replace(self._persisted, connections=kept))
        self._recompute()

    def set_global_priority(self, priority: GlobalDnsPriority) -> None:
        if priority == self._persisted.global_priority:
            return
        self._persist(dataclasses.replace(self._persisted, global_priority=priority))
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

    def _persist(self, config: DnsConfig) -> None:
        """Write first, then adopt: a failed write leaves memory and disk agreeing."""
        save_state(self._state_path, render_connections_file(config), self._state_file_error)
        self._persisted = config

    def _recompute(self, extra: frozenset[str] = frozenset()) -> None:
        if not self._started:
            return
        conns = [conn for conn, _ in self.connections()]
        old = self._plan
        self._plan = plan(conns, self._state, self.global_priority, self._mode)
        if self._backend is not None and self._plan != self._applied:
            self._backend.apply(self._plan)  # Failed from a file write reaches the caller
            self._applied = self._plan
        changed = set(extra)
        if old.resolver.nameservers != self._plan.resolver.nameservers:
            changed.add("Nameservers")
        if old.resolver.searches != self._plan.resolver.searches:
            changed.add("SearchDomains")
        if changed:
            self._notify(frozenset(changed))

    def _notify(self, names: frozenset[str]) -> None:
        for observer in self._observers:
            observer(names)
