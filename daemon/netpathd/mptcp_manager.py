"""The MPTCP half of the daemon: enablement, limits and endpoints of its network namespace.

Three layers of configuration, highest first: runtime-only changes (D-Bus
``*Runtime`` methods, gone at restart), persisted ones (every other D-Bus
change, in ``--state-dir/mptcp.conf``) and the administrator's
(``--config-dir/mptcp.conf``, never written by netpathd).  The kernel is the
truth for what *is*: it does not announce endpoint or limit changes made by
others (measured on 6.18), so every read goes to the kernel and drift is only
repaired when asked (start, ``Reload()``).  Network changes drive the
automatic endpoints of the ``[auto]`` policy (``netpathd.mptcp_reconcile``).

Every change runs in one order: validate (precise message) → apply to the
kernel → persist (undoing the kernel change if the write fails) → tell
observers.  An add or a flag change (which adopts someone else's endpoint) is
written down before the kernel sees it instead (``MptcpStore.record_add``): a
daemon killed in between must still know the endpoint as its own at the next
start.  A remove or a flush killed before its persist needs no such record:
the endpoint keeps its owner, and the next start restores what the files say.
A refusal leaves kernel and files as they were.  One lock serializes the
changes, so two callers never interleave half-applied plans on the shared
netlink socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from netpathd.errors import AlreadyExists, Failed, NetpathdError, NotFound
from netpathd.files.mptcp_store import MptcpStore
from netpathd.kernel import sysctl
from netpathd.kernel.mptcp_events import MptcpEvent, MptcpEvents
from netpathd.kernel.mptcp_pm import MptcpPm
from netpathd.model.mptcp import (
    CHANGEABLE_FLAGS,
    Endpoint,
    Limits,
    mixed_families_warning,
    refuse_conflicts,
    set_flags,
    validate_endpoint_id,
    validate_limits,
)
from netpathd.model.mptcp_config import EndpointConfig, EndpointKey, endpoint_config
from netpathd.model.mptcp_request import flags_request
from netpathd.mptcp_reconcile import MptcpReconciler

if TYPE_CHECKING:
    from netpathd.kernel.mptcp_diag import MptcpConnection
    from netpathd.kernel.sockets_owner import Owner
    from netpathd.model.links import NetState

log = logging.getLogger(__name__)

# Observers get the changed properties with their new values (model types).
Observer = Callable[[Mapping[str, object]], None]
EventObserver = Callable[[MptcpEvent], None]


class EnabledGuard(Protocol):
    """Told before and after net.mptcp.enabled is written (the TCP->MPTCP netns map must
    drop a namespace before MPTCP is disabled there and list it only once enabled)."""

    def before_enabled_write(self, enabled: bool) -> None: ...

    def after_enabled_write(self) -> None: ...


def _key_text(key: EndpointKey) -> str:
    return f"{key[0]} port {key[1]}" if key[1] else str(key[0])


def after_reply(report: Callable[[], None]) -> None:
    """Run ``report`` (a log line) when the current task is done, at once outside one.

    dbus-fast replies from a done callback it adds before the handler's task runs
    (``dbus_fast/aio/message_bus.py``), and those run in order: the journal write,
    about 40 µs of an ``AddEndpointRuntime`` (issue 13), follows the reply.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        task = None
    if task is None:
        report()
    else:
        task.add_done_callback(lambda _task: report())


class MptcpManager:
    def __init__(self, config_dir: Path, state_dir: Path, runtime_dir: Path) -> None:
        self._store = MptcpStore(config_dir, state_dir, runtime_dir)
        self._pm = MptcpPm()
        self._unavailable: NetpathdError | None = Failed("MPTCP manager is not started")
        self._events: MptcpEvents | None = None
        self._reconciler = MptcpReconciler(self._store, self._pm, self._write_enabled)
        self._enabled_guards: list[EnabledGuard] = []
        self._wake = asyncio.Event()  # set: run_network() has a round to run
        self._lock = asyncio.Lock()
        self._observers: list[Observer] = []
        self._event_observers: list[EventObserver] = []

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def observe_events(self, observer: EventObserver) -> None:
        self._event_observers.append(observer)

    def guard_enabled(self, guard: EnabledGuard) -> None:
        """``guard`` hears of every write of net.mptcp.enabled, before and after it."""
        self._enabled_guards.append(guard)

    def _write_enabled(self, enabled: bool) -> None:
        for guard in self._enabled_guards:
            guard.before_enabled_write(enabled)
        try:
            sysctl.set_mptcp_enabled(enabled)
        finally:
            for guard in self._enabled_guards:
                guard.after_enabled_write()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Read the files, open the kernel adapters and make the kernel match.

        At start a bad file is logged and left out: a daemon that runs serves
        DNS and can be fixed with Reload(); one that refuses to start helps no one.
        """
        self._store.load()
        try:
            await self._pm.open()
        except NetpathdError as error:
            self._unavailable = error
            log.error("MPTCP path manager unavailable: %s", error.message)
            return
        self._unavailable = None
        try:
            # Subscribe before anyone can see the bus name, so no event is missed.
            events = MptcpEvents()
            await events.__aenter__()
            self._events = events
        except NetpathdError as error:
            log.error("MPTCP events unavailable: %s", error.message)
        try:
            await self.apply()
        except NetpathdError as error:
            log.error("MPTCP configuration not applied: %s", error.message)

    async def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        self._pm.close()
        self._store.close()
        self._unavailable = Failed("MPTCP manager is stopped")

    def prepare_reload(self) -> Callable[[], Awaitable[None]]:
        """Read the administrator's file (a bad one raises); the result adopts it and
        repairs drift."""
        adopt = self._store.prepare_reload()

        async def commit() -> None:
            adopt()
            if self._unavailable is None:
                await self.apply()

        return commit

    async def run_events(self) -> None:
        """Hand every kernel event to the observers until cancelled."""
        if self._events is None:
            return
        try:
            async for event in self._events:
                for observer in self._event_observers:
                    observer(event)
        except NetpathdError as error:
            log.error("MPTCP events stopped: %s", error.message)

    # -- reading (always the kernel, never a cache) --------------------------------

    def _check(self) -> None:
        if self._unavailable is not None:
            raise self._unavailable

    def enabled(self) -> bool:
        return sysctl.get_mptcp_enabled()

    async def limits(self) -> Limits:
        self._check()
        async with self._lock:
            return await self._pm.get_limits()

    async def endpoints(self) -> list[Endpoint]:
        self._check()
        async with self._lock:
            return await self._pm.list_endpoints()

    async def connections(self, viewer_uid: int) -> list[tuple[MptcpConnection, list[Owner]]]:
        """Every MPTCP connection, with the processes holding it that ``viewer_uid`` may see.

        Like ``ss -Mnp`` run by that user: root sees every process, anyone else only the
        processes whose real, effective and saved uids are all its own (what /proc lets
        it read). The connections themselves are public, as sock_diag gives them to all.
        """
        from netpathd.kernel import mptcp_diag, sockets_owner  # noqa: PLC0415 - on request only

        connections = await mptcp_diag.list_connections()
        owners = await sockets_owner.socket_owners([conn.inode for conn in connections])

        def visible(owner: Owner) -> bool:
            return viewer_uid == 0 or owner.uids == {viewer_uid}

        return [
            (conn, [owner for owner in owners.get(conn.inode, []) if visible(owner)])
            for conn in connections
        ]

    # -- applying the configuration ------------------------------------------------

    async def apply(self) -> None:
        """Make the kernel hold the desired configuration; failures are logged, not raised."""
        self._check()
        async with self._lock:
            self._wake.clear()  # this round sees the latest network state too
            before = await self._reconciler.snapshot()
            await self._reconciler.full()
            after = await self._reconciler.snapshot()
        self._emit({name: value for name, value in after.items() if before[name] != value})

    # -- the network: automatic endpoints, interfaces that appear ------------------------

    def network_changed(self, state: NetState) -> None:
        """Take the rtnetlink watcher's coalesced snapshot; ``run_network()`` acts on it.

        Only the latest state is kept and one flag set, so a burst while a round
        runs costs exactly one more round, with the newest state, and no queue.
        """
        if self._reconciler.wants_network(state):
            self._wake.set()
        self._reconciler.state = state

    async def run_network(self) -> None:
        """Run a round for every wake-up until cancelled; a failed round never stops it."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._unavailable is not None:
                continue
            try:
                async with self._lock:
                    changed = await self._reconciler.network()
            except NetpathdError as error:
                log.error("MPTCP round after a network change failed: %s", error.message)
                continue
            except Exception:  # e.g. a netlink timeout: log, keep serving the next change
                log.exception("MPTCP round after a network change failed")
                continue
            self._emit(changed)

    # -- changes over D-Bus ------------------------------------------------------------

    async def set_enabled(self, enabled: bool, *, runtime: bool) -> None:
        async with self._lock:
            before = self.enabled()
            self._write_enabled(enabled)
            try:
                if runtime:
                    if self._store.configured().enabled is None:
                        self._store.capture("enabled", before)
                    self._store.runtime = dataclasses.replace(self._store.runtime, enabled=enabled)
                else:
                    self._store.persist(dataclasses.replace(self._store.persisted, enabled=enabled))
                    self._store.runtime = dataclasses.replace(self._store.runtime, enabled=None)
            except NetpathdError:
                self._write_enabled(before)
                raise
        if before != enabled:
            self._notify({"Enabled": enabled})

    async def set_limits(self, limits: Limits, *, runtime: bool) -> None:
        validate_limits(limits)
        self._check()
        async with self._lock:
            before = await self._pm.get_limits()
            if limits != before:
                await self._pm.set_limits(limits)
            try:
                if runtime:
                    base = self._store.configured()
                    if base.subflows is None:
                        self._store.capture("subflows", before.subflows)
                    if base.add_addr_accepted is None:
                        self._store.capture("add_addr_accepted", before.add_addr_accepted)
                    self._store.runtime = self._store.runtime.with_limits(limits)
                else:
                    self._store.persist(self._store.persisted.with_limits(limits))
                    self._store.runtime = dataclasses.replace(
                        self._store.runtime, subflows=None, add_addr_accepted=None
                    )
            except NetpathdError:
                with contextlib.suppress(NetpathdError):
                    await self._pm.set_limits(before)
                raise
        changed: dict[str, object] = {}
        if before.subflows != limits.subflows:
            changed["Subflows"] = limits.subflows
        if before.add_addr_accepted != limits.add_addr_accepted:
            changed["AddAddrAccepted"] = limits.add_addr_accepted
        self._notify(changed)

    async def add_endpoint(self, config: EndpointConfig, *, runtime: bool) -> int:
        """Add to the kernel and remember; returns the id (the kernel's choice for id 0).

        ``config`` comes from ``endpoint_request``, which validated the call's arguments.
        """
        self._check()
        endpoint = config.to_endpoint()
        async with self._lock:
            if config.id:
                for other in self._store.desired().endpoints:
                    if other.id == config.id and other.key != config.key:
                        raise AlreadyExists(
                            f"MPTCP endpoint id {config.id} is already configured "
                            f"for {_key_text(other.key)}"
                        )
            before = await self._pm.list_endpoints()
            refuse_conflicts(endpoint, before)
            if config.interface and not self._pm.interface_index(config.interface):
                raise NotFound(f"no network interface {config.interface!r}")
            undo = self._store.record_add(config, runtime=runtime)
            try:
                new_id, table = await self._pm.add_endpoint_and_list(endpoint, before)
            except NetpathdError:  # a refusal; an unknown outcome (timeout) is left to the start
                with contextlib.suppress(NetpathdError):
                    undo()
                raise
            if runtime:
                self._store.runtime = self._store.runtime.with_endpoint(config)
            else:
                self._store.runtime = self._store.runtime.without_endpoint(config.key)
            self._notify({"Endpoints": table})
        after_reply(lambda: _log_added(endpoint, new_id, table, runtime=runtime))
        return new_id

    async def remove_endpoint(self, endpoint_id: int) -> None:
        validate_endpoint_id(endpoint_id, allow_zero=False)
        self._check()
        async with self._lock:
            before = await self._pm.list_endpoints()
            current = next((e for e in before if e.id == endpoint_id), None)
            if current is None:
                configured = next(
                    (e for e in self._store.desired().endpoints if e.id == endpoint_id), None
                )
                if configured is None or self._store.admin.endpoint(configured.key) is not None:
                    raise NotFound(f"no MPTCP endpoint with id {endpoint_id}")
                # Configured but gone from the kernel (flushed behind our back): forget it.
                self._store.forget(configured.key)
                return
            key = (current.address, current.port)
            if self._store.admin.endpoint(key) is not None:
                raise Failed(
                    f"MPTCP endpoint {_key_text(key)} (id {endpoint_id}) is configured in "
                    f"{self._store.admin_path}; remove it there and call Reload()"
                )
            await self._pm.remove_endpoint(endpoint_id)
            try:
                self._store.forget(key)
            except NetpathdError:
                with contextlib.suppress(NetpathdError):
                    await self._pm.add_endpoint(current)
                raise
            log.info("removed MPTCP endpoint %s (id %d)", current.address, endpoint_id)
            # DEL_ADDR removes only that entry: the table is known without a dump
            self._notify({"Endpoints": [e for e in before if e.id != endpoint_id]})

    async def set_endpoint_flags(self, endpoint_id: int, flags: list[str]) -> None:
        """Set backup/fullmesh to exactly ``flags``; kept in the layer the endpoint is in."""
        wanted = flags_request(endpoint_id, flags)
        self._check()
        async with self._lock:
            current = await self._endpoint_by_id(endpoint_id)
            if current is None:
                raise NotFound(f"no MPTCP endpoint with id {endpoint_id}")
            set_flags(current, wanted)  # the kernel's refusal (fullmesh on signal) before a write
            key = (current.address, current.port)
            known = self._store.desired().endpoint(key)
            if known is None:  # not ours yet: from now on netpathd restores it
                known = dataclasses.replace(endpoint_config(current), id=0)
            config = dataclasses.replace(known, flags=(known.flags - CHANGEABLE_FLAGS) | wanted)
            in_runtime = self._store.runtime.endpoint(key) is not None
            previous = self._store.persisted
            if not in_runtime:  # committed before the kernel, like an add (MptcpStore.record_add)
                self._store.persist(previous.with_endpoint(config))
            try:
                updated = await self._pm.set_endpoint_flags(endpoint_id, wanted)
            except NetpathdError:
                if not in_runtime:
                    with contextlib.suppress(NetpathdError):
                        self._store.persist(previous)
                raise
            if in_runtime:
                self._store.runtime = self._store.runtime.with_endpoint(config)
            if updated.flags != current.flags:
                await self._notify_endpoints()

    async def flush_endpoints(self) -> None:
        """Empty the kernel's table and forget persisted and runtime endpoints.

        The administrator's endpoints stay configured: the next Reload() or
        restart puts them back, as it repairs any other drift.
        """
        self._check()
        async with self._lock:
            had = await self._pm.list_endpoints()
            await self._pm.flush_endpoints()
            self._store.runtime = dataclasses.replace(self._store.runtime, endpoints=())
            self._store.persist(dataclasses.replace(self._store.persisted, endpoints=()))
            self._store.record_applied(dataclasses.replace(self._store.applied, endpoints=()))
            log.info("flushed %d MPTCP endpoints", len(had))
            if had:
                await self._notify_endpoints()

    # -- helpers ---------------------------------------------------------------------

    async def _endpoint_by_id(self, endpoint_id: int) -> Endpoint | None:
        return next((e for e in await self._pm.list_endpoints() if e.id == endpoint_id), None)

    async def _notify_endpoints(self) -> None:
        self._notify({"Endpoints": await self._pm.list_endpoints()})

    def _notify(self, changed: Mapping[str, object]) -> None:
        """After a D-Bus change: tell observers, and replan the automatic endpoints.

        ``Enabled``, the limits and the endpoint table are all inputs of the
        automatic plan (a removed endpoint may free an address or a slot).
        """
        if changed and self._store.admin.auto is not None:
            self._wake.set()
        self._emit(changed)

    def _emit(self, changed: Mapping[str, object]) -> None:
        if changed:
            for observer in self._observers:
                observer(changed)


def _log_added(endpoint: Endpoint, new_id: int, table: list[Endpoint], *, runtime: bool) -> None:
    log.info(
        "added MPTCP endpoint %s (id %d)%s",
        endpoint.address,
        new_id,
        " until restart" if runtime else "",
        extra={"ENDPOINT_ID": new_id},
    )
    others = [e for e in table if e.id != new_id]
    if warning := mixed_families_warning(endpoint, others):
        log.warning("%s", warning, extra={"ENDPOINT_ID": new_id})
