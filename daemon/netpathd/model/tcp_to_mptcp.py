"""Which new TCP sockets become MPTCP sockets: the scope, and the map contents it means.

The kernel program (kernel/bpf_mptcpify.py) reads a default verdict and per-cgroup verdicts
that override it for a cgroup and its descendants (the deepest listed cgroup decides).  This
module turns the administrator's scope into those contents and into the smallest change from
what the maps hold, so a scope change is a few map writes and never a reload:

- system-wide: default `CONVERT`, each excluded cgroup `LEAVE`;
- otherwise: default `LEAVE` when some cgroup is included (`SystemWideInclude`, and the units
  of ``EnableApp`` registered at their start), each of those `CONVERT`, exclusions still
  `LEAVE` (a sub-cgroup of an included unit can opt out); `NOTHING_IN_SCOPE` when nothing is
  included, so the program returns at its first map read.

A cgroup both included and excluded is excluded: an opt-out is the safer reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netpathd.errors import InvalidArgument

NOTHING_IN_SCOPE, CONVERT, LEAVE = 0, 1, 2

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


@dataclass(frozen=True, slots=True)
class MapContents:
    """What the BPF map holds: the default verdict and the verdict of each cgroup."""

    default: int
    cgroups: Mapping[int, int] = field(default_factory=dict)  # cgroup id → verdict


@dataclass(frozen=True, slots=True)
class MapChange:
    """The writes that turn one `MapContents` into another; false when there are none."""

    default: int | None  # None: unchanged
    put: Mapping[int, int]
    delete: frozenset[int]

    def __bool__(self) -> bool:
        return self.default is not None or bool(self.put) or bool(self.delete)


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


def contents(system_wide: bool, included: Iterable[int], excluded: Iterable[int]) -> MapContents:
    """The maps for resolved cgroup ids."""
    leave = dict.fromkeys(excluded, LEAVE)
    if system_wide:
        return MapContents(CONVERT, leave)
    convert = {cgroup: CONVERT for cgroup in included if cgroup not in leave}
    if not convert:
        return MapContents(NOTHING_IN_SCOPE)
    return MapContents(LEAVE, {**convert, **leave})


def change(current: MapContents, wanted: MapContents) -> MapChange:
    """What to write so that ``current`` becomes ``wanted``.

    The adapter puts entries before it changes the default and deletes them after, so an
    exclusion is in place before system-wide starts converting, and stays until it stops.
    """
    put = {key: value for key, value in wanted.cgroups.items() if current.cgroups.get(key) != value}
    delete = frozenset(current.cgroups) - frozenset(wanted.cgroups)
    default = wanted.default if wanted.default != current.default else None
    return MapChange(default, put, delete)
