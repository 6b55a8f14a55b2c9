"""Which new TCP sockets become MPTCP sockets: the administrator's scope.

What the scope means for the kernel program's maps is `model.tcp_to_mptcp_maps`, which
loads only when a scope is applied: most daemons never have one, and every start would pay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from netpathd.errors import InvalidArgument

# systemd src/basic/unit-name.c: a unit name with one of the types that own a cgroup
_UNIT = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|scope|slice)")
_MAX_ENTRIES = 1024
_PATH_MAX = 4096


@dataclass(frozen=True, slots=True)
class Scope:
    """What the administrator asked for (persisted), by unit name or cgroup path."""

    system_wide: bool = False
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


def check_entry(entry: str) -> str:
    """A unit (``NAME.service``, ``.scope``, ``.slice``) or an absolute cgroup path."""
    if entry.startswith("/"):
        parts = entry.split("/")[1:]
        if len(entry) > _PATH_MAX or any(part in ("", ".", "..") for part in parts[:-1]):
            raise InvalidArgument(f"{entry!r} is not a normalised cgroup path")
        if parts[-1] in (".", "..") or "\0" in entry:
            raise InvalidArgument(f"{entry!r} is not a normalised cgroup path")
        return entry.rstrip("/") or "/"
    if not _UNIT.fullmatch(entry) or len(entry) > 255:
        raise InvalidArgument(
            f"{entry!r} is neither a unit (NAME.service, .scope or .slice) "
            "nor an absolute cgroup path"
        )
    return entry


def check_entries(entries: Iterable[str]) -> tuple[str, ...]:
    """Validated, duplicates dropped, order kept."""
    checked = tuple(dict.fromkeys(check_entry(entry) for entry in entries))
    if len(checked) > _MAX_ENTRIES:
        raise InvalidArgument(f"at most {_MAX_ENTRIES} entries, not {len(checked)}")
    return checked
