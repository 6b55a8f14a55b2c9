"""The reducers' cost per event does not grow with the tables, and a re-dump is linear.

Measured by counting, never by timing: Python-level calls (a profile hook sees
every function call and generator step, so a scan over n elements shows as n
calls) and the memory one event allocates (a copy of a table shows as bytes
proportional to it).  Each check compares a state of size n with one of 10 n.
"""

from __future__ import annotations

import ipaddress
import sys
import tracemalloc
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState
from netpathd.model.netstate import (
    AddressGone,
    AddressSeen,
    LinkSeen,
    NetEvent,
    RouteGone,
    RouteSeen,
    apply,
    apply_all,
)

SMALL, LARGE = 1_000, 10_000
BASE_V6 = int(ipaddress.IPv6Address("2001:db8::"))


def address(i: int, *, tentative: bool = False) -> Address:
    return Address(2, ipaddress.IPv6Address(BASE_V6 + 0x10000 + i), 64, 0, tentative)


def route(i: int, family: Family = Family.IPV6) -> DefaultRoute:
    gateway = ipaddress.IPv6Address(BASE_V6 + 1) if family is Family.IPV6 else None
    return DefaultRoute(family, 2 + i % 2, 1000 + i, gateway)


def dump(n: int) -> list[NetEvent]:
    return [
        LinkSeen(Link(2, "wan0", True)),
        LinkSeen(Link(3, "lan0", True)),
        AddressSeen(Address(2, ipaddress.IPv4Address("192.0.2.2"), 24, 0, False)),
        AddressSeen(Address(3, ipaddress.IPv4Address("198.51.100.2"), 24, 0, False)),
        *(AddressSeen(address(i)) for i in range(n)),
        *(RouteSeen(route(i)) for i in range(n)),
        RouteSeen(route(5, Family.IPV4)),
    ]


def built(n: int) -> NetState:
    state = apply_all(NetState(), dump(n))
    for family in Family:
        state.best_default_route(family)  # what the DNS ordering asked after the dump
    return state


def calls(action: Callable[[], object]) -> int:
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return count


def allocated(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def event_then_best(state: NetState, event: NetEvent) -> Callable[[], object]:
    """One event as the daemon pays for it: the fold, then the DNS ordering's question."""

    def action() -> object:
        new = apply(state, event)
        return [new.best_default_route(family) for family in Family]

    return action


EVENTS: dict[str, Callable[[int], NetEvent]] = {
    "new address": lambda n: AddressSeen(address(n + 7)),
    "address DAD done": lambda n: AddressSeen(address(n // 2, tentative=True)),
    "address removed": lambda n: AddressGone(address(n // 2)),
    "new route": lambda n: RouteSeen(route(n + 7)),
    "better route": lambda n: RouteSeen(DefaultRoute(Family.IPV6, 3, 1, None)),
    "route replaced": lambda n: RouteSeen(route(n // 2), replace=True),
    "route removed": lambda n: RouteGone(route(n // 2)),
    "best route removed": lambda n: RouteGone(route(0)),
}


@pytest.mark.parametrize("kind", EVENTS)
def test_an_event_makes_as_many_calls_on_a_large_state_as_on_a_small_one(kind: str) -> None:
    small, large = built(SMALL), built(LARGE)
    assert calls(event_then_best(large, EVENTS[kind](LARGE))) <= (
        calls(event_then_best(small, EVENTS[kind](SMALL))) + 2
    )


@pytest.mark.parametrize("kind", ["address DAD done", "address removed", "route removed"])
def test_an_event_copies_nothing(kind: str) -> None:
    """Changes that add no key (so no dict ever grows) allocate the same on either state."""
    small, large = built(SMALL), built(LARGE)
    small_bytes = allocated(event_then_best(small, EVENTS[kind](SMALL)))
    assert allocated(event_then_best(large, EVENTS[kind](LARGE))) <= small_bytes + 512


def test_a_redump_is_linear() -> None:
    small = calls(lambda: built(SMALL))
    assert calls(lambda: built(LARGE)) <= 11 * small


def test_the_best_route_is_remembered_after_it_was_removed() -> None:
    def second_query(n: int) -> int:
        state = apply(built(n), RouteGone(route(5, Family.IPV4)))
        assert state.best_default_route(Family.IPV4) is None
        return calls(lambda: state.best_default_route(Family.IPV4))

    assert second_query(LARGE) <= second_query(SMALL)
