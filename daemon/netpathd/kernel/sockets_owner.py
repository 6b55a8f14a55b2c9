"""Which processes hold a socket: sock_diag inode → pid and command, as ``ss -p`` finds them.

The kernel keeps no socket → process link (a descriptor can be passed or inherited by many
processes), so ``ss -p`` (iproute2 misc/ss.c ``user_ent_hash_build()``) reads every
``/proc/PID/fd/N`` link and matches ``socket:[INODE]``.  This does the same, with bounds:
it costs O(processes * descriptors) system calls, so it runs only when a client asks
(GetConnections) and only when there is a connection to match; it reads the daemon's own
pid namespace; it yields to the event loop between processes so a large host does not
stall other D-Bus clients; and it stops after `MAX_DESCRIPTORS` links with a warning in the
log (processes it did not reach are then missing from the answer).
Processes and descriptors that vanish or deny access while being read are skipped.
Each owner carries its real, effective and saved uids, so the MPTCP service can show a
caller only what ``ss -p`` would show it (netpathd reads /proc as root).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROC = "/proc"
MAX_DESCRIPTORS = 200_000
_YIELD_EVERY = 64  # processes between two yields to the loop


@dataclass(frozen=True, slots=True, order=True)
class Owner:
    pid: int
    comm: str
    uids: frozenset[int] = frozenset()  # real, effective and saved; empty when unreadable


def _uids(proc: str, pid: str) -> frozenset[int]:
    try:
        with open(f"{proc}/{pid}/status", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("Uid:"):
                    real, effective, saved, _fs = line.split()[1:5]
                    return frozenset({int(real), int(effective), int(saved)})
    except (OSError, ValueError):
        pass
    return frozenset()


def _comm(proc: str, pid: str) -> str:
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as file:
            return file.read().rstrip("\n")
    except OSError:
        return ""


async def socket_owners(
    inodes: Collection[int], proc: str = PROC, max_descriptors: int = MAX_DESCRIPTORS
) -> dict[int, list[Owner]]:
    """Processes holding each socket inode of ``inodes`` (sorted by pid); missing: none found."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    owners: dict[int, list[Owner]] = {}
    if not wanted:
        return owners
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return owners
    seen = 0
    for index, pid in enumerate(pids):
        if index % _YIELD_EVERY == _YIELD_EVERY - 1:
            await asyncio.sleep(0)
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, a kernel thread without files, or not ours to read
        matched: set[int] = set()
        for fd in fds:
            seen += 1
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None:
                matched.add(inode)
        if matched:
            owner = Owner(int(pid), _comm(proc, pid), _uids(proc, pid))
            for inode in matched:
                owners.setdefault(inode, []).append(owner)
        if seen >= max_descriptors:
            log.warning("socket owners: stopped after %d descriptors, the list is partial", seen)
            break
    for found in owners.values():
        found.sort()
    return owners
