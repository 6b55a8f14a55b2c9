"""Making the kernel hold what netpathd wants of MPTCP: configuration and automatic endpoints.

Two kinds of rounds, both run by ``MptcpManager`` under its one lock:

* ``full()`` at start, ``Reload()`` and every explicit apply: ``enabled``, the
  configured endpoints (drift repaired), the automatic endpoints, the limits,
  ``rp_filter``;
* ``network()`` after a coalesced rtnetlink snapshot: configured endpoints
  whose interface was missing and has appeared, then the automatic endpoints.
  Configured endpoints are otherwise not repaired here: drift is repaired only
  when asked, and a network change is not a request.

The automatic plan (``netpathd.model.mptcp_auto.plan``) is applied in its
order (removes, flag changes, adds, limits, ``rp_filter``).  What netpathd
owns is written to the applied record *before* an add (a crash between the add
and the record would otherwise leave an endpoint nobody would ever remove) and
settled after the round: a failed add drops its key, a failed remove keeps it.
Configured endpoints the state file does not name (the administrator's,
runtime-only ones) are recorded before their add in the same way.
``rp_filter`` marks are recorded only after the write, since a mark without
the write would stop netpathd from ever loosening that link.

The planner and its policy (``mptcp_auto``, ``mptcp_auto_config``) load with the
first round that has a policy or leftovers of one: a daemon without ``[auto]``
starts without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from netpathd.errors import NetpathdError, NotFound
from netpathd.files.mptcp_store import MptcpStore
from netpathd.kernel import sysctl
from netpathd.model.links import NetState
from netpathd.model.mptcp import CHANGEABLE_FLAGS, Endpoint, EndpointFlag, Limits
from netpathd.model.mptcp_config import (
    EndpointKey,
    first_mixed_families_warning,
    flag_names,
    plan_endpoints,
    scalar_targets,
    spend_restore,
)

if TYPE_CHECKING:  # the adapter imports pyroute2; the unit tests pass a fake
    from netpathd.kernel.mptcp_pm import MptcpPm
    from netpathd.model import mptcp_auto
    from netpathd.model.mptcp_auto_config import AutoPolicy

log = logging.getLogger(__name__)


def _retired() -> AutoPolicy:
    """The policy once ``[auto]`` left the file: automatic endpoints go, rp_filter is restored."""
    from netpathd.model.mptcp_auto_config import DISABLED, AutoPolicy, AutoRule  # noqa: PLC0415

    return AutoPolicy(default=AutoRule(flags=DISABLED))


def _fields(endpoint: Endpoint) -> dict[str, object]:
    """Journal fields of an endpoint (systemd's JournalHandler upper-cases ``extra`` keys)."""
    fields: dict[str, object] = {"ENDPOINT_ID": endpoint.id}
    if endpoint.ifindex:
        fields["IFINDEX"] = endpoint.ifindex
    return fields


class MptcpReconciler:
    def __init__(
        self,
        store: MptcpStore,
        pm: MptcpPm,
        write_enabled: Callable[[bool], None] = sysctl.set_mptcp_enabled,
    ) -> None:
        self._store = store
        self._pm = pm
        self._write_enabled = write_enabled
        self.state: NetState | None = None  # the latest snapshot; None before the first dump
        # Configured endpoints bound to an interface that did not exist: key -> interface.
        self._waiting: dict[EndpointKey, str] = {}

    def wants_network(self, state: NetState) -> bool:
        """Whether a network change can change anything (cheap: no kernel read).

        Called with the new snapshot before it replaces ``self.state``: a link
        that configured endpoints name changing its ifindex (deleted, renamed,
        re-created) asks for a round, in which the kernel itself is asked.
        """
        if self._store.admin.auto is not None:
            return True
        before = self.state
        names = {e.interface for e in self._store.desired().endpoints if e.interface}
        if before is not None and any(_ifindex(before, n) != _ifindex(state, n) for n in names):
            return True
        return any(state.link_by_name(name) is not None for name in self._waiting.values())

    # -- rounds ----------------------------------------------------------------------------

    async def full(self) -> None:
        """Everything, in one order; failures are logged and the rest still applied."""
        current = await self._pm.get_limits()
        enabled, limits = scalar_targets(self._store.desired(), self._store.applied, current)
        if enabled is not None:
            try:
                self._write_enabled(enabled)
            except NetpathdError as error:
                log.error("cannot set net.mptcp.enabled: %s", error.message)
        self._waiting = {}
        await self._configured(None)
        held, _ = await self._automatic(limits)
        await self._set_limits(current, held or limits)
        self._store.record_applied(spend_restore(self._store.applied, self._store.runtime))

    async def network(self) -> dict[str, object]:
        """A round for a new network state; returns the changed D-Bus properties."""
        state = self.state
        if state is None:
            return {}
        wrote = await self._unbind_from_lost_links()
        appeared = {key for key, name in self._waiting.items() if state.link_by_name(name)}
        if appeared:
            wrote = await self._configured(appeared) or wrote
        # Only a policy whose limits follow needs them: under ``keep`` (the default) a
        # new address costs a dump and an add, the least the kernel lets one decide on.
        policy = self._store.admin.auto
        follows = False
        if policy is not None:
            from netpathd.model.mptcp_auto_config import LimitsMode  # noqa: PLC0415 - loaded

            follows = policy.limits is LimitsMode.FOLLOW
        current = await self._pm.get_limits() if follows else None
        limits, table = await self._automatic(current)
        changed: dict[str, object] = {}
        if current is not None and limits is not None and await self._set_limits(current, limits):
            changed.update(Subflows=limits.subflows, AddAddrAccepted=limits.add_addr_accepted)
        if table is None and wrote:
            table = await self._pm.list_endpoints()
        if table is not None:
            changed["Endpoints"] = table
        return changed

    # -- the configured endpoints -------------------------------------------------------

    async def _unbind_from_lost_links(self) -> bool:
        """Take configured endpoints out of the kernel when their interface's name is gone.

        The kernel keeps an endpoint on its ifindex when that link is deleted
        (6.18: ``dev if3``), and refuses the address again (EEXIST) when a link of
        that name comes back with a new ifindex.  The binding is the name, as in
        the configuration: an endpoint whose name no longer leads to its ifindex
        (deleted, renamed, re-created) is removed and waits for the name, and
        ``_configured`` adds it to the link that then carries it.  The kernel's
        name lookup decides, not the snapshot, which may trail a link just made.
        """
        named = {e.key: e.interface for e in self._store.desired().endpoints if e.interface}
        if not named:
            return False
        removed = False
        for endpoint in await self._pm.list_endpoints():
            key = (endpoint.address, endpoint.port)
            name = named.get(key)
            if (
                not (name and endpoint.ifindex)
                or self._pm.interface_index(name) == endpoint.ifindex
            ):
                continue
            try:
                await self._pm.remove_endpoint(endpoint.id)
            except NetpathdError as error:
                log.error("cannot remove MPTCP endpoint %d: %s", endpoint.id, error.message)
                continue
            self._waiting[key] = name
            removed = True
            log.info(
                "removed MPTCP endpoint %s (id %d): its interface %s (ifindex %d) is gone; "
                "it is added again when a link named %s appears",
                endpoint.address,
                endpoint.id,
                name,
                endpoint.ifindex,
                name,
                extra=_fields(endpoint),
            )
        return removed

    async def _configured(self, only: set[EndpointKey] | None) -> bool:
        """Add, repair and remove configured endpoints (``only``: just add those keys).

        An endpoint bound to an interface that does not exist yet waits for it
        (NotFound comes from the name lookup, before the kernel is asked).
        """
        desired = self._store.desired().endpoints
        if only is not None:
            desired = tuple(e for e in desired if e.key in only)
        actual = await self._pm.list_endpoints()
        applied = () if only is not None else (e.key for e in self._store.applied.endpoints)
        plan = plan_endpoints(desired, actual, applied)
        for endpoint in plan.remove:
            try:
                await self._pm.remove_endpoint(endpoint.id)
                log.info(
                    "removed MPTCP endpoint %s (id %d): no longer configured",
                    endpoint.address,
                    endpoint.id,
                    extra=_fields(endpoint),
                )
            except NetpathdError as error:
                log.error("cannot remove MPTCP endpoint %d: %s", endpoint.id, error.message)
        for endpoint_id, flags in plan.change_flags:
            try:
                await self._pm.set_endpoint_flags(endpoint_id, flags)
            except NetpathdError as error:
                log.error("cannot restore flags of endpoint %d: %s", endpoint_id, error.message)
        persisted = self._store.persisted
        # Owned before the kernel adds them, like every add (``MptcpStore.own``); the
        # state file already names its own endpoints.
        self._store.own(c.key for c in plan.add if persisted.endpoint(c.key) != c)
        for config in plan.add:
            try:
                new_id = await self._pm.add_endpoint(config.to_endpoint())
            except NotFound as error:
                if not config.interface:
                    log.error("cannot add MPTCP endpoint %s: %s", config.address, error.message)
                    continue
                self._waiting[config.key] = config.interface
                log.warning(
                    "MPTCP endpoint %s waits for interface %s to appear (%s)",
                    config.address,
                    config.interface,
                    error.message,
                )
                continue
            except NetpathdError as error:
                # the link is there now: retrying at every network change would only repeat this
                self._waiting.pop(config.key, None)
                log.error("cannot add MPTCP endpoint %s: %s", config.address, error.message)
                continue
            self._waiting.pop(config.key, None)
            log.info(
                "added MPTCP endpoint %s (id %d) from the configuration%s",
                config.address,
                new_id,
                f" now that {config.interface} exists" if only is not None else "",
                extra={"ENDPOINT_ID": new_id},
            )
        if only is None:
            if warning := first_mixed_families_warning(desired):
                log.warning("%s", warning)
            self._store.own_only(e.key for e in desired if persisted.endpoint(e.key) != e)
        return bool(plan)

    # -- the automatic endpoints ---------------------------------------------------------

    async def _automatic(
        self, limits: Limits | None
    ) -> tuple[Limits | None, list[Endpoint] | None]:
        """Plan and apply the automatic endpoints.

        ``limits`` are the kernel's, None when not read (nothing is planned for them).
        Returns the limits to hold afterwards (``limits`` raised when the policy
        says ``follow``) and the endpoint table read after writing it, None when
        it was not written.
        """
        state = self.state
        applied = self._store.applied
        policy = self._store.admin.auto
        if state is None or (policy is None and not (applied.auto_owned or applied.rp_loosened)):
            return limits, None
        # An endpoint the configuration names is the configuration's: its flags
        # are restored from there, so the policy must stop claiming it.
        configured = {e.key for e in self._store.desired().endpoints}
        owned = applied.auto_owned - configured
        table = await self._pm.list_endpoints()
        try:
            enabled = sysctl.get_mptcp_enabled()
        except NetpathdError as error:
            log.error("cannot read net.mptcp.enabled: %s", error.message)
            return limits, None
        from netpathd.model import mptcp_auto  # noqa: PLC0415 - see the module docstring

        plan = mptcp_auto.plan(
            policy or _retired(),
            state,
            enabled,
            table,
            owned,
            limits=limits,
            rp_filter=_read_rp_filter(state, applied.rp_loosened),
            rp_touched=applied.rp_loosened,
        )
        for left in plan.left_out:
            log.debug("no automatic MPTCP endpoint for %s on %s: %s", *_left(left))
        if plan.add:  # own before adding: see the module docstring
            ahead = owned | {(e.address, e.port) for e in plan.add}
            self._store.own_automatic(ahead, applied.rp_loosened)
        kept, dropped = await self._apply_endpoints(plan)
        loosened = self._apply_rp_filter(plan)
        self._store.own_automatic((plan.owned - dropped) | kept, loosened)
        written = None
        if plan.add or plan.remove or plan.change:
            written = await self._pm.list_endpoints()
            _log_added(plan.add, dropped, written)
        return plan.limits or limits, written

    async def _apply_endpoints(
        self, plan: mptcp_auto.Plan
    ) -> tuple[frozenset[EndpointKey], frozenset[EndpointKey]]:
        """Removes, flag changes, adds; returns (keys still ours after a failed remove,
        keys not ours after a failed add)."""
        kept: set[EndpointKey] = set()
        dropped: set[EndpointKey] = set()
        for endpoint in plan.remove:
            try:
                await self._pm.remove_endpoint(endpoint.id)
            except NetpathdError as error:
                kept.add((endpoint.address, endpoint.port))
                log.error(
                    "cannot remove automatic MPTCP endpoint %s (id %d): %s",
                    endpoint.address,
                    endpoint.id,
                    error.message,
                    extra=_fields(endpoint),
                )
                continue
            log.info(
                "removed automatic MPTCP endpoint %s (id %d) from %s",
                endpoint.address,
                endpoint.id,
                endpoint.interface or f"ifindex {endpoint.ifindex}",
                extra=_fields(endpoint),
            )
        for change in plan.change:
            endpoint = change.endpoint
            try:
                await self._pm.set_endpoint_flags(endpoint.id, change.flags & CHANGEABLE_FLAGS)
            except NetpathdError as error:
                log.error(
                    "cannot change flags of automatic MPTCP endpoint %d: %s",
                    endpoint.id,
                    error.message,
                    extra=_fields(endpoint),
                )
                continue
            log.info(
                "automatic MPTCP endpoint %s (id %d) now has flags %s",
                endpoint.address,
                endpoint.id,
                _flag_text(change.flags),
                extra=_fields(endpoint),
            )
        for endpoint in plan.add:
            key = (endpoint.address, endpoint.port)
            try:
                # the ids come from the one dump after every write (``_log_added``)
                await self._pm.add_without_readback(endpoint)
            except NetpathdError as error:
                dropped.add(key)
                log.error(
                    "cannot add automatic MPTCP endpoint %s on %s: %s",
                    endpoint.address,
                    endpoint.interface,
                    error.message,
                    extra={"IFINDEX": endpoint.ifindex},
                )
        return frozenset(kept), frozenset(dropped - kept)

    def _apply_rp_filter(self, plan: mptcp_auto.Plan) -> frozenset[str]:
        """Write the plan's rp_filter values; returns the links marked as loosened by netpathd."""
        from netpathd.model import mptcp_auto  # noqa: PLC0415 - loaded with the plan

        loosened = set(plan.rp_touched)
        for write in plan.rp_filter:
            try:
                sysctl.set_rp_filter(write.interface, sysctl.RpFilter(write.value))
            except NetpathdError as error:
                log.error("cannot set rp_filter of %s: %s", write.interface, error.message)
                if write.value == mptcp_auto.RP_FILTER_LOOSE:
                    loosened.discard(write.interface)
                else:  # still ours to restore
                    loosened.add(write.interface)
                continue
            if write.value == mptcp_auto.RP_FILTER_LOOSE:
                why = "strict reverse-path filtering drops MPTCP subflows"
            else:
                why = "no automatic IPv4 MPTCP endpoint is left there"
            log.info("set net.ipv4.conf.%s.rp_filter to %d: %s", write.interface, write.value, why)
        return frozenset(loosened)

    async def snapshot(self) -> dict[str, object]:
        """The D-Bus properties a full round may change, to tell observers the difference."""
        limits = await self._pm.get_limits()
        try:
            enabled: bool | None = sysctl.get_mptcp_enabled()
        except NetpathdError:
            enabled = None
        return {
            "Enabled": enabled,
            "Subflows": limits.subflows,
            "AddAddrAccepted": limits.add_addr_accepted,
            "Endpoints": await self._pm.list_endpoints(),
        }

    async def _set_limits(self, current: Limits, limits: Limits) -> bool:
        if limits == current:
            return False
        try:
            await self._pm.set_limits(limits)
        except NetpathdError as error:
            log.error("cannot set MPTCP limits: %s", error.message)
            return False
        return True


def _ifindex(state: NetState, name: str) -> int:
    link = state.link_by_name(name)
    return 0 if link is None else link.ifindex


def _read_rp_filter(state: NetState, touched: Iterable[str]) -> dict[str, int]:
    """Current rp_filter of the links that may matter: those with IPv4 addresses, and marked ones.

    Reading only those keeps a host with many links from paying a /proc read
    per link per round; a link that is gone or unreadable is left out, which
    the planner takes as "not known" and decides next time.
    """
    with_ipv4 = {link.name for link in state.links.values() if state.has_ipv4_address(link.ifindex)}
    names = with_ipv4 | set(touched)
    values: dict[str, int] = {}
    for name in names:
        try:
            values[name] = int(sysctl.get_rp_filter(name))
        except NetpathdError:
            continue
    return values


def _log_added(
    added: Iterable[Endpoint], failed: frozenset[EndpointKey], table: Iterable[Endpoint]
) -> None:
    """Log the adds the kernel accepted, with the ids it chose (its ack carries none)."""
    ids = {(endpoint.address, endpoint.port): endpoint.id for endpoint in table}
    for endpoint in added:
        key = (endpoint.address, endpoint.port)
        if key in failed:
            continue
        new_id = ids.get(key, 0)  # 0: removed by someone else right after the add
        log.info(
            "added automatic MPTCP endpoint %s (id %d, %s) on %s",
            endpoint.address,
            new_id,
            _flag_text(endpoint.flags),
            endpoint.interface,
            extra={"ENDPOINT_ID": new_id, "IFINDEX": endpoint.ifindex},
        )


def _left(left: mptcp_auto.LeftOut) -> tuple[str, str, str]:
    return str(left.address), left.interface, left.reason


def _flag_text(flags: Iterable[EndpointFlag]) -> str:
    return " ".join(flag_names(flags)) or "no flags"
