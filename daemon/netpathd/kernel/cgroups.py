"""cgroup v2 facts the TCP → MPTCP program needs: where the hierarchy is, ids and members.

``bpf_get_current_cgroup_id()`` answers with the kernel's id of a cgroup2 directory, which is
its inode number on 64-bit (the handle ``name_to_handle_at()`` gives; kernel/cgroup/cgroup.c
``cgroup_id()`` is the kernfs node id).  The hierarchy is found in /proc/self/mounts because
it is not always at /sys/fs/cgroup: hybrid layouts put it at /sys/fs/cgroup/unified.
"""

from __future__ import annotations

import os
from pathlib import Path

from netpathd.errors import Failed, NotFound

MOUNTS = Path("/proc/self/mounts")


def cgroup2_root(mounts: Path = MOUNTS) -> Path:
    try:
        lines = mounts.read_text().splitlines()
    except OSError as error:
        raise Failed(f"cannot read {mounts}: {error.strerror}") from None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1].replace("\\040", " "))
    raise NotFound("no cgroup2 hierarchy is mounted")


def cgroup_id(root: Path, path: str) -> int:
    """The id of cgroup ``path`` (``/system.slice/x.service``); NotFound when it is not there."""
    try:
        return os.stat(root / path.lstrip("/")).st_ino
    except FileNotFoundError:
        raise NotFound(f"no cgroup {path} (is the unit running?)") from None
    except OSError as error:
        raise Failed(f"cannot read cgroup {path}: {error.strerror}") from None


def cgroup_of(pid: int) -> str:
    """The cgroup2 path of process ``pid`` (the ``0::`` line of /proc/PID/cgroup)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as error:
        raise NotFound(f"process {pid} is gone: {error.strerror}") from None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise NotFound(f"process {pid} is in no cgroup2 cgroup")


def netns_inum(pid: str = "self") -> int:
    """The inode number of a network namespace, as the program reads ``net->ns.inum``."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino
