"""TCP → MPTCP for every process or for chosen cgroups, through the kernel's BPF hook.

The service between the D-Bus face (bus/mptcp.py) and the kernel adapters: it probes once
(kernel/bpf_probe.py), loads the program once when something is in scope, and from then on
only writes maps (kernel/mptcpify_link.py) from the pure plan (model/tcp_to_mptcp_maps.py).

The probe walks the kernel's BTF (about 10 ms and a few MiB), so it runs at start only when a
persisted scope or a pinned program needs it; otherwise on first need (a member that asks
for the backend or changes the scope), and the BPF modules are not even imported before.

- The scope (``SystemWide``, ``SystemWideExclude``, ``SystemWideInclude``) is persisted in
  ``STATE_DIR/tcp-to-mptcp.conf`` before the maps change; a map write that fails restores
  the file, so a refusal changes nothing.
- Units started by ``EnableApp``'s drop-in register themselves (`register`): the drop-in's
  ``ExecStartPre=+netpathctl mptcp app register`` runs inside the unit's cgroup before the
  main process, the daemon resolves the caller's cgroup from its bus peer's pid, lists it,
  and only then replies, so the main process's first socket() is already covered.
- The daemon's own network namespace is listed in the netns map only while
  ``net.mptcp.enabled`` is 1 (`before_enabled_write`/`after_enabled_write`).
- Cgroups of units and paths are resolved to ids when the scope is set, at start and at
  Reload: a cgroup that does not exist yet is skipped and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from netpathd.errors import Failed, NetpathdError, NotFound, NotSupported, PermissionDenied
from netpathd.files.atomic import write_atomic
from netpathd.model.tcp_to_mptcp import Scope, check_entries

if TYPE_CHECKING:  # BPF, BTF and cgroups load with the probe (module docstring)
    from netpathd.kernel.bpf_probe import ProbeResult
    from netpathd.kernel.mptcpify_link import MptcpifyLink

log = logging.getLogger(__name__)

STATE_FILE = "tcp-to-mptcp.conf"
HEADER = "# Managed by netpathd (SystemWide, SystemWideExclude/Include): do not edit.\n"
UnitCgroup = Callable[[str], Awaitable[str]]  # a unit's ControlGroup, from systemd


@dataclass(frozen=True, slots=True)
class Stats:
    """The BPF program's counters: TCP socket() calls it saw, and those it made MPTCP."""

    seen: int
    converted: int


def render_scope(scope: Scope) -> str:
    return (
        f"{HEADER}[tcp-to-mptcp]\nsystem-wide={'true' if scope.system_wide else 'false'}\n"
        f"exclude={';'.join(scope.exclude)}\ninclude={';'.join(scope.include)}\n"
    )


def parse_scope(text: str) -> Scope:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key.strip()] = value.strip()

    def entries(key: str) -> tuple[str, ...]:
        return check_entries(word for word in values.get(key, "").split(";") if word)

    return Scope(values.get("system-wide") == "true", entries("exclude"), entries("include"))


class TcpToMptcp:
    def __init__(
        self, state_dir: Path, pin_dir: Path | None = None, unit_cgroup: UnitCgroup | None = None
    ) -> None:
        self._path = state_dir / STATE_FILE
        self._pin_dir = pin_dir
        self._unit_cgroup = unit_cgroup
        self._probe: asyncio.Future[ProbeResult] | None = None
        self._link: MptcpifyLink | None = None
        self.scope = Scope()
        self._apps: dict[str, int] = {}  # registered unit → its cgroup id
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self.scope = parse_scope(self._path.read_text())
        except FileNotFoundError:
            pass
        except (OSError, NetpathdError) as error:
            log.error("%s left out: %s", self._path, error)
        if self.scope == Scope() and self._pin_dir is None:
            return  # nothing to apply or re-adopt: probed on first need
        probe = await self.probed()
        if not probe.available:
            return
        hook = probe.hook
        if self._pin_dir is not None and hook is not None:
            from netpathd.kernel.mptcpify_link import MptcpifyLink  # noqa: PLC0415

            self._link = MptcpifyLink.adopt(self._pin_dir, hook.offsets, hook.attach_btf_id)
            if self._link is not None:
                log.info("re-adopted the TCP->MPTCP program pinned in %s", self._pin_dir)
        try:
            await self._apply(self.scope)
        except NetpathdError as error:
            log.error("TCP->MPTCP scope not applied: %s", error.message)

    def close(self) -> None:
        """Let go of the link: unpinned, the kernel detaches it and new sockets are TCP."""
        if self._probe is not None:
            self._probe.cancel()  # a probe still walking the BTF is not needed any more
        if self._link is not None:
            self._link.close()
            self._link = None

    # -- reading -------------------------------------------------------------------------

    async def probed(self) -> ProbeResult:
        """The probe's answer; the first caller starts it, callers meanwhile share it."""
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._run_probe())
        return await asyncio.shield(self._probe)

    async def _run_probe(self) -> ProbeResult:
        from netpathd.kernel.bpf_probe import probe_in_loop  # noqa: PLC0415

        probe = await probe_in_loop()
        if not probe.available:
            log.info("TCP->MPTCP through BPF unavailable: %s", probe.reason)
        return probe

    async def available(self) -> bool:
        return (await self.probed()).available

    async def backend(self) -> str:
        """``bpf``, or ``seccomp`` (the ``netpathctl run`` wrapper) with the probe's reason."""
        probe = await self.probed()
        return "bpf" if probe.available else f"seccomp: bpf {probe}"

    def stats(self) -> Stats | None:
        """None while no program is loaded."""
        if self._link is None:
            return None
        try:
            return Stats(*self._link.counters())
        except OSError as error:
            raise Failed(f"cannot read the TCP->MPTCP counters: {error.strerror}") from None

    # -- changes -------------------------------------------------------------------------

    async def _require_bpf(self) -> ProbeResult:
        probe = await self.probed()
        if not probe.available:
            raise NotSupported(f"TCP->MPTCP through BPF is {probe}")
        return probe

    async def set_scope(self, scope: Scope) -> bool:
        """Persist, then apply; False when it was already so (nothing written)."""
        await self._require_bpf()
        scope = replace(
            scope, exclude=check_entries(scope.exclude), include=check_entries(scope.include)
        )
        async with self._lock:
            if scope == self.scope:
                return False
            before = self.scope
            write_atomic(self._path, render_scope(scope).encode())
            try:
                await self._apply(scope)
            except (NetpathdError, OSError):
                write_atomic(self._path, render_scope(before).encode())
                raise
            self.scope = scope
            if not scope.system_wide and before.system_wide and self._pin_dir is not None:
                from netpathd.kernel.mptcpify_link import unpin  # noqa: PLC0415

                unpin(self._pin_dir)  # MPTCP for everyone no longer outlives the daemon
            return True

    async def register(self, pid: int, enabled_units: list[str]) -> str:
        """List the cgroup of the unit whose ExecStartPre= process is ``pid``."""
        await self._require_bpf()
        from netpathd.kernel import cgroups  # noqa: PLC0415

        path = cgroups.cgroup_of(pid)
        parts = path.split("/")
        index = next((i for i in range(len(parts) - 1, 0, -1) if parts[i].endswith(".service")), 0)
        if not index:
            raise PermissionDenied(f"process {pid} runs in {path}, not in a service")
        unit, unit_path = parts[index], "/".join(parts[: index + 1])
        if unit not in enabled_units:
            raise PermissionDenied(f"{unit} is not enabled for MPTCP (netpathctl mptcp app enable)")
        async with self._lock:
            self._apps[unit] = cgroups.cgroup_id(cgroups.cgroup2_root(), unit_path)
            await self._apply(self.scope)
        log.info("MPTCP for new sockets of %s (cgroup %s)", unit, unit_path)
        return unit

    async def forget(self, unit: str) -> None:
        async with self._lock:
            if self._apps.pop(unit, None) is not None:
                await self._apply(self.scope)

    async def reload(self) -> None:
        """Resolve every unit and path again (cgroups come and go with their units)."""
        if self._probe is not None and await self.available():  # else nothing was applied
            async with self._lock:
                await self._apply(self.scope)

    # -- the netns map, in step with net.mptcp.enabled -----------------------------------

    def before_enabled_write(self, enabled: bool) -> None:
        if not enabled and self._link is not None:
            from netpathd.kernel import cgroups  # noqa: PLC0415

            self._link.set_netns(cgroups.netns_inum(), enabled=False)

    def after_enabled_write(self) -> None:
        if self._link is not None:
            from netpathd.kernel import cgroups, sysctl  # noqa: PLC0415

            self._link.set_netns(cgroups.netns_inum(), enabled=sysctl.get_mptcp_enabled())

    # -- applying ------------------------------------------------------------------------

    async def _ids(self, entries: tuple[str, ...]) -> list[int]:
        from netpathd.kernel import cgroups  # noqa: PLC0415

        root = cgroups.cgroup2_root()
        found = []
        for entry in entries:
            try:
                path = entry if entry.startswith("/") else await self._cgroup_of_unit(entry)
                found.append(cgroups.cgroup_id(root, path))
            except NotFound as error:
                log.warning("TCP->MPTCP: %s skipped: %s", entry, error.message)
        return found

    async def _cgroup_of_unit(self, unit: str) -> str:
        if self._unit_cgroup is None:
            raise NotFound(f"no systemd to ask for the cgroup of {unit}")
        return await self._unit_cgroup(unit)

    async def _apply(self, scope: Scope) -> None:
        from netpathd.model.tcp_to_mptcp_maps import MapContents, change, contents  # noqa: PLC0415

        included = [*await self._ids(scope.include), *self._apps.values()]
        wanted = contents(scope.system_wide, included, await self._ids(scope.exclude))
        if self._link is None:
            if wanted == MapContents(0):
                return  # nothing in scope: no program, no cost to any socket()
            probe = await self._require_bpf()
            hook = probe.hook
            if hook is None:
                raise NotSupported(f"TCP->MPTCP through BPF is {probe}")
            from netpathd.kernel.mptcpify_link import MptcpifyLink  # noqa: PLC0415

            try:
                self._link = MptcpifyLink.attach(hook.offsets, hook.attach_btf_id)
            except OSError as error:
                raise Failed(f"cannot attach the TCP->MPTCP program: {error}") from None
            self.after_enabled_write()
        try:
            self._link.apply(change(self._link.contents(), wanted))
            if self._pin_dir is not None and scope.system_wide:
                self._link.pin(self._pin_dir)
        except OSError as error:
            raise Failed(f"cannot update the TCP->MPTCP maps: {error}") from None
