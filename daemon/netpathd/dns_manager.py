"""The DNS half of the daemon: connections in, one resolver file out.

Three layers of connections, highest first: runtime-only ones (set over D-Bus,
gone at restart), persisted ones (set over D-Bus, kept in ``--state-dir``) and
the administrator's (``--config-dir/dns.conf``, never written by netpathd).
The order itself is `model.dns.order`, a pure function; this class only feeds
it the current network state, writes the result when it changed and tells
observers which properties moved.  Until at least one connection is configured
the resolver file is not touched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from netpathd.errors import ConfigError, Failed, NotFound
from netpathd.files.atomic import remove_stale_temporaries
from netpathd.files.config import read_config_text
from netpathd.files.resolv_conf import RcManager, render, write_resolv_conf
from netpathd.files.state import save_state
from netpathd.model.dns import DnsConnection, DnsResult, GlobalDnsPriority, order
from netpathd.model.dns_settings import (
    DnsConfig,
    merge_settings,
    parse_connections_file,
    render_connections_file,
)
from netpathd.model.links import NetState

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
        self._state_path = state_dir / DNS_FILE_NAME
        self.resolv_conf = resolv_conf
        # The private copy NetworkManager calls /run/NetworkManager/resolv.conf: with
        # rc-manager=symlink, /etc/resolv.conf may point here.
        self._private_copy = state_dir / "resolv.conf"
        self.rc_manager = rc_manager
        self._admin = DnsConfig()
        self._persisted = DnsConfig()
        self._runtime: dict[str, DnsConnection] = {}
        self._state_file_error: ConfigError | None = None
        self._state = NetState()
        self._result = DnsResult()
        self._written: str | None = None
        self._started = False  # nothing is written before the first network state is known
        self._observers: list[Observer] = []

    # -- reading ---------------------------------------------------------------

    @property
    def result(self) -> DnsResult:
        return self._result

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
        return sorted(layers.values(), key=lambda item: (item[0].created_seq, item[0].name))

    def is_active(self, conn: DnsConnection) -> bool:
        link = self._state.link_by_name(conn.interface_name)
        return link is not None and link.up

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    # -- loading ---------------------------------------------------------------

    def remove_stale_temporaries(self) -> None:
        """Remove what writes interrupted by a kill left (at start, before any write)."""
        paths = [self._state_path, self._private_copy, self.resolv_conf]
        if self.rc_manager is RcManager.FILE:  # written through the symlink, where it ends
            paths.append(Path(os.path.realpath(self.resolv_conf)))
        remove_stale_temporaries(*dict.fromkeys(paths))

    def load(self) -> None:
        """Read both files, each all or nothing, then raise the first error (ConfigError).

        A bad file keeps what was last loaded from it (nothing, at start) while the other
        still loads.  A bad state file also blocks persisting until it is fixed: writing
        over it would throw away every connection it still holds.
        """
        errors: list[ConfigError] = []
        try:
            self._admin = read_dns_config(self._admin_path)
        except ConfigError as error:
            errors.append(error)
        try:
            persisted = read_dns_config(self._state_path)
        except ConfigError as error:
            errors.append(error)
            self._state_file_error = error
        else:
            self._state_file_error = None
            # Creation order: the admin's connections first, then the persisted ones.
            offset = len(self._admin.connections)
            self._persisted = dataclasses.replace(
                persisted,
                connections=tuple(
                    dataclasses.replace(conn, created_seq=conn.created_seq + offset)
                    for conn in persisted.connections
                ),
            )
        self._recompute()
        if errors:
            raise errors[0]

    # -- changes -----------------------------------------------------------------

    def update_network(self, state: NetState) -> None:
        """Called with the watcher's coalesced snapshots; the first one enables writing."""
        self._state = state
        self._started = True
        self._recompute()

    def set_connection(self, name: str, settings: Mapping[str, object], runtime: bool) -> None:
        """Create or update; invalid settings raise before anything changes."""
        existing = {conn.name: conn for conn, _ in self.connections()}.get(name)
        next_seq = max((conn.created_seq for conn, _ in self.connections()), default=-1) + 1
        conn = merge_settings(existing, name, settings, created_seq=next_seq)
        if runtime:
            self._runtime[name] = conn
        else:
            kept = tuple(c for c in self._persisted.connections if c.name != name)
            self._persist(dataclasses.replace(self._persisted, connections=(*kept, conn)))
            self._runtime.pop(name, None)
        self._recompute()

    def remove_connection(self, name: str) -> None:
        if any(conn.name == name for conn in self._admin.connections):
            raise Failed(
                f"connection {name!r} is defined in {self._admin_path}; "
                "remove it there and call Reload()"
            )
        in_runtime = self._runtime.pop(name, None) is not None
        kept = tuple(c for c in self._persisted.connections if c.name != name)
        if len(kept) == len(self._persisted.connections) and not in_runtime:
            raise NotFound(f"no DNS connection named {name!r}")
        if len(kept) != len(self._persisted.connections):
            self._persist(dataclasses.replace(self._persisted, connections=kept))
        self._recompute()

    def set_global_priority(self, priority: GlobalDnsPriority) -> None:
        if priority == self._persisted.global_priority:
            return
        self._persist(dataclasses.replace(self._persisted, global_priority=priority))
        self._recompute(extra=frozenset({"GlobalDnsPriority"}))

    # -- effects -------------------------------------------------------------------

    def _persist(self, config: DnsConfig) -> None:
        """Write first, then adopt: a failed write leaves memory and disk agreeing."""
        save_state(self._state_path, render_connections_file(config), self._state_file_error)
        self._persisted = config

    def _recompute(self, extra: frozenset[str] = frozenset()) -> None:
        if not self._started:
            return
        conns = [conn for conn, _ in self.connections()]
        old, self._result = self._result, order(conns, self._state, self.global_priority)
        text = render(self._result)
        # With no DNS connection at all netpathd has nothing to say about DNS: it leaves the
        # resolver file alone instead of replacing the host's servers with none.
        if conns and text != self._written:
            self._private_copy.parent.mkdir(parents=True, exist_ok=True)
            if write_resolv_conf(
                self.resolv_conf, text, self.rc_manager, private_path=self._private_copy
            ):
                log.info(
                    "wrote %s: nameservers %s",
                    self.resolv_conf,
                    " ".join(self._result.nameservers) or "(none)",
                    extra={"RESOLV_CONF": str(self.resolv_conf)},
                )
            self._written = text
        changed = set(extra)
        if old.nameservers != self._result.nameservers:
            changed.add("Nameservers")
        if old.searches != self._result.searches:
            changed.add("SearchDomains")
        if changed:
            for observer in self._observers:
                observer(frozenset(changed))
