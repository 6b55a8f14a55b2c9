"""A persistent mapping whose updates cost O(1): what lets a `NetState` change per event
without copying every address and route.

Baker's "rerooting" trick (used by Conchon and Filliâtre for persistent
arrays): all versions of one lineage share a single `dict`, which holds the
contents of the version used last; every other version is one step of a diff
towards a neighbour.  Updating or reading the version used last costs a dict
operation; reading an older version first replays the diffs between the two,
once, and then that version is the cheap one.  The rtnetlink watcher always
works on its newest state, so it never pays for the replay; a test that keeps
an old snapshot pays O(distance) when it reads it, and nothing is ever wrong.

Values are compared by identity when deciding whether an update changes
anything, so putting the very same object back returns the same version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class PDict(Generic[K, V]):
    """An immutable mapping; `set` and `delete` return a new version sharing storage."""

    __slots__ = ("_data", "_key", "_next", "_value")

    def __init__(self, items: dict[K, V] | None = None) -> None:
        # A root holds `_data`; a diff holds (`_key`, `_value`) which, applied to the
        # contents of `_next`, give this version (`_value` is _MISSING for "absent").
        self._data: dict[K, V] | None = dict(items) if items else {}
        self._key: K | None = None
        self._value: object = None
        self._next: PDict[K, V] | None = None

    def _reroot(self) -> dict[K, V]:
        """Make this version the one holding the shared dict, and return that dict."""
        if self._data is not None:
            return self._data
        path: list[PDict[K, V]] = []
        node = self
        while node._data is None:
            path.append(node)
            node = cast(PDict[K, V], node._next)
        data = node._data
        for diff in reversed(path):
            key = cast(K, diff._key)
            old = data.get(key, _MISSING)
            if diff._value is _MISSING:
                del data[key]
            else:
                data[key] = cast(V, diff._value)
            node._data, node._key, node._value, node._next = None, key, old, diff
            diff._data, diff._key, diff._value, diff._next = data, None, None, None
            node = diff
        return data

    def _successor(self, data: dict[K, V], key: K, old: object) -> PDict[K, V]:
        new: PDict[K, V] = PDict.__new__(PDict)
        new._data, new._key, new._value, new._next = data, None, None, None
        self._data, self._key, self._value, self._next = None, key, old, new
        return new

    def set(self, key: K, value: V) -> PDict[K, V]:
        data = self._reroot()
        old = data.get(key, _MISSING)
        if old is value:
            return self
        data[key] = value
        return self._successor(data, key, old)

    def delete(self, key: K) -> PDict[K, V]:
        data = self._reroot()
        old = data.pop(key, _MISSING)
        if old is _MISSING:
            return self
        return self._successor(data, key, old)

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._reroot().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._reroot()

    def __len__(self) -> int:
        return len(self._reroot())

    def keys(self) -> list[K]:
        """A copy: iterating stays safe while other versions of the lineage are used."""
        return list(self._reroot())

    def values(self) -> list[V]:
        return list(self._reroot().values())

    def items(self) -> list[tuple[K, V]]:
        return list(self._reroot().items())

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"PDict({self._reroot()!r})"
