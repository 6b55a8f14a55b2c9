"""What a TCP->MPTCP scope means for the kernel program's maps, and the change to them.

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NOTHING_IN_SCOPE, CONVERT, LEAVE = 0, 1, 2


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
