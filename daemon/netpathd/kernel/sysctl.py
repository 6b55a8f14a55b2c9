"""The two sysctls netpathd reads and writes, through /proc/sys of the current namespace.

``/proc/sys/net`` shows the network namespace of the process that opens it,
so the daemon (started with ``ip netns exec`` or in its own namespace) only
ever sees and changes its own namespace.  The files are tiny and served from
kernel memory, so reading and writing them directly in the event loop never
blocks in practice.
"""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

from netpathd.errors import Failed, InvalidArgument, NotFound

PROC_SYS = Path("/proc/sys")

MPTCP_ENABLED = PROC_SYS / "net/mptcp/enabled"

# An interface name as the kernel accepts it (dev_valid_name, net/core/dev.c):
# at most 15 bytes, no '/', no whitespace, not "." or "..".
_IFNAME = re.compile(r"[^/\s]{1,15}")


class RpFilter(IntEnum):
    """``net.ipv4.conf.<if>.rp_filter`` (Documentation/networking/ip-sysctl.rst)."""

    OFF = 0
    STRICT = 1  # drops MPTCP's extra subflows when replies route via another link
    LOOSE = 2  # what NetworkManager switches to on links with IPv4 MPTCP endpoints


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except (OSError, ValueError) as error:
        raise Failed(f"cannot read {path}: {error}") from None


def _write_int(path: Path, value: int) -> None:
    """Write ``value`` unless already set (idempotent, and no needless privileged write)."""
    if _read_int(path) == value:
        return
    try:
        path.write_text(f"{value}\n")
    except OSError as error:
        raise Failed(f"cannot write {value} to {path}: {error}") from None


def get_mptcp_enabled() -> bool:
    """``net.mptcp.enabled``: may MPTCP sockets be created in this namespace."""
    return _read_int(MPTCP_ENABLED) != 0


def set_mptcp_enabled(enabled: bool) -> None:
    _write_int(MPTCP_ENABLED, 1 if enabled else 0)


def _rp_filter_path(ifname: str) -> Path:
    if not _IFNAME.fullmatch(ifname) or ifname in (".", ".."):
        raise InvalidArgument(f"invalid interface name {ifname!r}")
    return PROC_SYS / "net/ipv4/conf" / ifname / "rp_filter"


def get_rp_filter(ifname: str) -> RpFilter:
    """The interface's own value (the kernel applies max(conf.all, conf.<if>))."""
    path = _rp_filter_path(ifname)
    value = _read_int(path)
    try:
        return RpFilter(value)
    except ValueError:
        raise Failed(f"{path} holds unknown value {value}") from None


def set_rp_filter(ifname: str, value: RpFilter) -> None:
    _write_int(_rp_filter_path(ifname), int(value))
