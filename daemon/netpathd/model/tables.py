"""Address and default-route tables indexed by link: the sets `NetState` holds.

Each update returns a new table in O(1) (amortized, on `PDict`), and the
questions the reducers, the DNS ordering and the MPTCP planner ask are
answered from an index instead of a scan: the addresses of one link, whether a
link still has an IPv4 address, the routes of one link, the routes a
`replace` displaces.  Both tables are read-only `Set`s, so they compare and
iterate like the frozensets they replace.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Set
from typing import TYPE_CHECKING, TypeVar, cast

from netpathd.model.persistent import PDict

if TYPE_CHECKING:  # links.py imports this module for NetState
    from netpathd.model.links import Address, DefaultRoute, Family, IPAddress

    AddressKey = tuple[IPAddress, int]  # within a link: the kernel's (address, prefixlen)
    RouteKey = tuple[Family, int, IPAddress | None]  # within a link: family, metric, gateway
    SameMetric = PDict[tuple[int, RouteKey], DefaultRoute]  # by (ifindex, key)


T = TypeVar("T")


def _frozen(items: Iterable[object]) -> frozenset[object]:
    return items if isinstance(items, frozenset) else frozenset(items)


class _Table(Set[T]):
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        # Set's mixin would probe `other` once per element, and two versions of one
        # lineage would then replay their diffs back and forth at every probe.
        if not isinstance(other, Set):
            return NotImplemented
        return len(self) == len(other) and _frozen(self) == _frozen(other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(map(repr, self))})"


class AddressTable(_Table["Address"]):
    """The addresses of every link, keyed as the kernel keys them."""

    __slots__ = ("_by_link", "_ipv4", "_size")

    def __init__(self, addresses: Iterable[Address] = ()) -> None:
        self._by_link: PDict[int, PDict[AddressKey, Address]] = PDict()
        self._ipv4: PDict[int, int] = PDict()  # IPv4 addresses per link, for the flush rule
        self._size = 0
        table = self
        for address in addresses:
            table = table.put(address)
        self._by_link, self._ipv4, self._size = table._by_link, table._ipv4, table._size

    @staticmethod
    def _key(address: Address) -> AddressKey:
        return (address.address, address.prefixlen)

    def _with(
        self, by_link: PDict[int, PDict[AddressKey, Address]], ipv4: PDict[int, int], size: int
    ) -> AddressTable:
        table = AddressTable.__new__(AddressTable)
        table._by_link, table._ipv4, table._size = by_link, ipv4, size
        return table

    def put(self, address: Address) -> AddressTable:
        """Add, or replace the address with the same key (new flags: DAD finished)."""
        on_link = self._by_link.get(address.ifindex) or PDict()
        key = self._key(address)
        old = on_link.get(key)
        if old == address:
            return self
        by_link = self._by_link.set(address.ifindex, on_link.set(key, address))
        if old is not None:
            return self._with(by_link, self._ipv4, self._size)
        ipv4 = self._ipv4
        if address.address.version == 4:
            ipv4 = ipv4.set(address.ifindex, (ipv4.get(address.ifindex) or 0) + 1)
        return self._with(by_link, ipv4, self._size + 1)

    def remove(self, address: Address) -> AddressTable:
        """Remove the address with the same key, whatever its flags."""
        on_link = self._by_link.get(address.ifindex)
        key = self._key(address)
        if on_link is None or key not in on_link:
            return self
        on_link = on_link.delete(key)
        by_link = (
            self._by_link.set(address.ifindex, on_link)
            if len(on_link)
            else self._by_link.delete(address.ifindex)
        )
        ipv4 = self._ipv4
        if address.address.version == 4:
            left = (ipv4.get(address.ifindex) or 0) - 1
            ipv4 = ipv4.set(address.ifindex, left) if left else ipv4.delete(address.ifindex)
        return self._with(by_link, ipv4, self._size - 1)

    def without_link(self, ifindex: int) -> AddressTable:
        on_link = self._by_link.get(ifindex)
        if on_link is None:
            return self
        return self._with(
            self._by_link.delete(ifindex), self._ipv4.delete(ifindex), self._size - len(on_link)
        )

    def on_link(self, ifindex: int) -> list[Address]:
        on_link = self._by_link.get(ifindex)
        return [] if on_link is None else on_link.values()

    def has_ipv4(self, ifindex: int) -> bool:
        return ifindex in self._ipv4

    def __contains__(self, item: object) -> bool:
        try:
            on_link = self._by_link.get(item.ifindex)  # type: ignore[attr-defined]
            key = self._key(item)  # type: ignore[arg-type]
        except AttributeError:
            return False  # not an Address
        return on_link is not None and on_link.get(key) == item

    def __iter__(self) -> Iterator[Address]:
        for on_link in self._by_link.values():
            yield from on_link.values()

    def __len__(self) -> int:
        return self._size


class RouteTable(_Table["DefaultRoute"]):
    """Main-table default routes, by link and by (family, metric)."""

    __slots__ = ("_by_link", "_by_metric", "_size", "_up")

    def __init__(self, routes: Iterable[DefaultRoute] = ()) -> None:
        self._by_link: PDict[int, PDict[RouteKey, DefaultRoute]] = PDict()
        # What NLM_F_REPLACE displaces: the kernel's route with the same family and metric.
        self._by_metric: PDict[tuple[Family, int], SameMetric] = PDict()
        # Routes without linkdown per (link, family): the MPTCP planner's "has a default route".
        self._up: PDict[tuple[int, Family], int] = PDict()
        self._size = 0
        table = self
        for route in routes:
            table = table.put(route)
        self._by_link, self._by_metric = table._by_link, table._by_metric
        self._up, self._size = table._up, table._size

    @staticmethod
    def _key(route: DefaultRoute) -> RouteKey:
        return (route.family, route.metric, route.gateway)

    def _with(
        self,
        by_link: PDict[int, PDict[RouteKey, DefaultRoute]],
        by_metric: PDict[tuple[Family, int], SameMetric],
        up: PDict[tuple[int, Family], int],
        size: int,
    ) -> RouteTable:
        table = RouteTable.__new__(RouteTable)
        table._by_link, table._by_metric, table._up, table._size = by_link, by_metric, up, size
        return table

    @staticmethod
    def _count_up(
        up: PDict[tuple[int, Family], int], route: DefaultRoute | None, step: int
    ) -> PDict[tuple[int, Family], int]:
        if route is None or route.linkdown:
            return up
        slot = (route.ifindex, route.family)
        count = (up.get(slot) or 0) + step
        return up.set(slot, count) if count else up.delete(slot)

    def find(self, route: DefaultRoute) -> DefaultRoute | None:
        """The route the kernel would call the same one (its flags may differ)."""
        on_link = self._by_link.get(route.ifindex)
        return None if on_link is None else on_link.get(self._key(route))

    def put(self, route: DefaultRoute) -> RouteTable:
        on_link = self._by_link.get(route.ifindex) or PDict()
        key = self._key(route)
        old = on_link.get(key)
        if old == route:
            return self
        by_link = self._by_link.set(route.ifindex, on_link.set(key, route))
        slot = (route.family, route.metric)
        same_metric = self._by_metric.get(slot) or PDict()
        by_metric = self._by_metric.set(slot, same_metric.set((route.ifindex, key), route))
        up = self._count_up(self._count_up(self._up, old, -1), route, 1)
        return self._with(by_link, by_metric, up, self._size + (old is None))

    def remove(self, route: DefaultRoute) -> RouteTable:
        on_link = self._by_link.get(route.ifindex)
        key = self._key(route)
        if on_link is None or key not in on_link:
            return self
        old = on_link.get(key)
        on_link = on_link.delete(key)
        by_link = (
            self._by_link.set(route.ifindex, on_link)
            if len(on_link)
            else self._by_link.delete(route.ifindex)
        )
        slot = (route.family, route.metric)
        same_metric = cast("SameMetric", self._by_metric.get(slot))
        same_metric = same_metric.delete((route.ifindex, key))
        by_metric = (
            self._by_metric.set(slot, same_metric)
            if len(same_metric)
            else self._by_metric.delete(slot)
        )
        return self._with(by_link, by_metric, self._count_up(self._up, old, -1), self._size - 1)

    def with_metric(self, family: Family, metric: int) -> list[DefaultRoute]:
        same_metric = self._by_metric.get((family, metric))
        return [] if same_metric is None else same_metric.values()

    def lowest(
        self,
        family: Family,
        rank: Callable[[DefaultRoute], tuple[int, int]],
        keep: Callable[[DefaultRoute], bool],
    ) -> DefaultRoute | None:
        """The best-ranked route of ``family`` that ``keep`` accepts, ranks led by the metric.

        A heap of the metrics, not a scan of the routes: after the best route goes away
        (with 10,000 default routes) the next one costs one pass over machine integers
        and a look at the routes of the lowest metrics only.
        """
        metrics = [metric for slot_family, metric in self._by_metric if slot_family is family]
        heapq.heapify(metrics)
        while metrics:
            kept = [
                route for route in self.with_metric(family, heapq.heappop(metrics)) if keep(route)
            ]
            if kept:
                return min(kept, key=rank)
        return None

    def has_up(self, ifindex: int, family: Family) -> bool:
        """Whether the link holds a route of the family that is not linkdown."""
        return (ifindex, family) in self._up

    def on_link(self, ifindex: int) -> list[DefaultRoute]:
        on_link = self._by_link.get(ifindex)
        return [] if on_link is None else on_link.values()

    def __contains__(self, item: object) -> bool:
        try:
            return self.find(item) == item  # type: ignore[arg-type]
        except AttributeError:
            return False  # not a DefaultRoute

    def __iter__(self) -> Iterator[DefaultRoute]:
        for on_link in self._by_link.values():
            yield from on_link.values()

    def __len__(self) -> int:
        return self._size
