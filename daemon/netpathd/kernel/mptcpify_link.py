"""The loaded TCP → MPTCP program: its maps, its link, and an optional pin under bpffs.

By default the daemon holds the link's fd, so a dead daemon fails safe: the kernel detaches
the program when the last fd closes, and new sockets are plain TCP again.  With a pin
directory the link and maps are pinned there (BPF_OBJ_PIN), so MPTCP survives a daemon
restart; the next start re-adopts them when the pinned program's tag (the kernel's hash of
its instructions, map fds zeroed) equals the tag of the program this daemon would load, and
replaces them otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
from pathlib import Path

from netpathd.kernel import bpf_syscall
from netpathd.kernel.bpf_mptcpify import (
    COUNTER_CONVERTED,
    COUNTER_SEEN,
    MAPS,
    NetnsOffsets,
    mptcpify_program,
)
from netpathd.kernel.bpf_syscall import BPF_MODIFY_RETURN, BPF_PROG_TYPE_TRACING
from netpathd.model.tcp_to_mptcp_maps import MapChange, MapContents

log = logging.getLogger(__name__)

LINK_PIN = "link"
_U32, _U64 = struct.Struct("=I"), struct.Struct("=Q")


def _load(offsets: NetnsOffsets, attach_btf_id: int, map_fds: dict[str, int]) -> int:
    program = mptcpify_program(offsets).assemble(map_fds)
    fd, _log = bpf_syscall.prog_load(
        program, BPF_PROG_TYPE_TRACING, name="netpathd_mptcp",
        expected_attach_type=BPF_MODIFY_RETURN, attach_btf_id=attach_btf_id,
    )  # fmt: skip
    return fd


class MptcpifyLink:
    """Maps and link fds of one attached program; `close()` lets the kernel detach it."""

    def __init__(self, map_fds: dict[str, int], link_fd: int) -> None:
        self._maps = map_fds
        self._link = link_fd

    @classmethod
    def attach(cls, offsets: NetnsOffsets, attach_btf_id: int) -> MptcpifyLink:
        """Create the maps, load the program and attach it (BPF_LINK_CREATE)."""
        map_fds: dict[str, int] = {}
        prog_fd = -1
        try:
            for spec in MAPS:
                map_fds[spec.name] = bpf_syscall.map_create(spec)
            prog_fd = _load(offsets, attach_btf_id, map_fds)
            link_fd = bpf_syscall.link_create(prog_fd, BPF_MODIFY_RETURN)
        except OSError:
            for fd in map_fds.values():
                os.close(fd)
            raise
        finally:
            if prog_fd >= 0:
                os.close(prog_fd)  # the link holds the program
        return cls(map_fds, link_fd)

    @classmethod
    def adopt(cls, pin_dir: Path, offsets: NetnsOffsets, attach_btf_id: int) -> MptcpifyLink | None:
        """The pinned link and maps when they hold this daemon's program; None otherwise
        (nothing pinned, or another program: then the stale pins are removed)."""
        if not (pin_dir / LINK_PIN).exists():
            return None
        fds: dict[str, int] = {}
        try:
            for spec in MAPS:
                fds[spec.name] = bpf_syscall.obj_get(pin_dir / spec.name)
            link_fd = bpf_syscall.obj_get(pin_dir / LINK_PIN)
        except OSError as error:
            log.warning("cannot re-adopt the pinned TCP->MPTCP program: %s", error.strerror)
            for fd in fds.values():
                os.close(fd)
            unpin(pin_dir)
            return None
        adopted = cls(fds, link_fd)
        if adopted.tag() != adopted._expected_tag(offsets, attach_btf_id):
            log.warning("the program pinned in %s is not this version's: replaced", pin_dir)
            adopted.close()
            unpin(pin_dir)
            return None
        return adopted

    def tag(self) -> bytes:
        prog_fd = bpf_syscall.prog_fd_by_id(bpf_syscall.link_prog_id(self._link))
        try:
            return bpf_syscall.prog_tag(prog_fd)
        finally:
            os.close(prog_fd)

    def _expected_tag(self, offsets: NetnsOffsets, attach_btf_id: int) -> bytes:
        prog_fd = _load(offsets, attach_btf_id, self._maps)  # loaded only, never attached
        try:
            return bpf_syscall.prog_tag(prog_fd)
        finally:
            os.close(prog_fd)

    def pin(self, pin_dir: Path) -> None:
        """Pin maps and link; the link last, since `adopt` starts from it."""
        pin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for spec in MAPS:
            with contextlib.suppress(FileExistsError):
                bpf_syscall.obj_pin(self._maps[spec.name], pin_dir / spec.name)
        with contextlib.suppress(FileExistsError):
            bpf_syscall.obj_pin(self._link, pin_dir / LINK_PIN)

    def close(self) -> None:
        for fd in (*self._maps.values(), self._link):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._maps, self._link = {}, -1

    # -- the policy ------------------------------------------------------------------

    def contents(self) -> MapContents:
        default = bpf_syscall.map_lookup(self._maps["policy"], _U32.pack(0), 4)
        cgroups: dict[int, int] = {}
        for key in bpf_syscall.map_keys(self._maps["cgroups"], 8):
            value = bpf_syscall.map_lookup(self._maps["cgroups"], key, 4)
            if value is not None:
                cgroups[_U64.unpack(key)[0]] = _U32.unpack(value)[0]
        return MapContents(_U32.unpack(default)[0] if default else 0, cgroups)

    def apply(self, change: MapChange) -> None:
        """Entries first, then the default, then deletions (see model.tcp_to_mptcp_maps.change)."""
        cgroups = self._maps["cgroups"]
        for cgroup, verdict in change.put.items():
            bpf_syscall.map_update(cgroups, _U64.pack(cgroup), _U32.pack(verdict))
        if change.default is not None:
            bpf_syscall.map_update(self._maps["policy"], _U32.pack(0), _U32.pack(change.default))
        for cgroup in change.delete:
            bpf_syscall.map_delete(cgroups, _U64.pack(cgroup))

    def set_netns(self, inum: int, *, enabled: bool) -> None:
        """List (MPTCP enabled there) or unlist a network namespace."""
        if enabled:
            bpf_syscall.map_update(self._maps["netns"], _U32.pack(inum), _U32.pack(1))
        else:
            bpf_syscall.map_delete(self._maps["netns"], _U32.pack(inum))

    def netns(self) -> set[int]:
        return {_U32.unpack(key)[0] for key in bpf_syscall.map_keys(self._maps["netns"], 4)}

    def counters(self) -> tuple[int, int]:
        """(seen, converted): TCP socket() calls, summed over every CPU."""
        cpus = bpf_syscall.possible_cpus()
        totals = []
        for counter in (COUNTER_SEEN, COUNTER_CONVERTED):
            raw = bpf_syscall.map_lookup(self._maps["counters"], _U32.pack(counter), 8 * cpus)
            totals.append(sum(struct.unpack(f"={cpus}Q", raw)) if raw else 0)
        return totals[0], totals[1]


def unpin(pin_dir: Path) -> None:
    """Remove the pins (the link first: without it nothing is re-adopted)."""
    with contextlib.suppress(FileNotFoundError):
        (pin_dir / LINK_PIN).unlink()
    shutil.rmtree(pin_dir, ignore_errors=True)
