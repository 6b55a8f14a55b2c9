"""The rtnetlink watcher against a real kernel, in a throw-away namespace."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from netpathd.kernel.rtnl import RtnlWatcher
from netpathd.model.links import DefaultRoute, Family, NetState
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


class Watched:
    """A started watcher plus a way to await a condition on its published state."""

    def __init__(self, ns: Netns, rcvbuf: int | None = None) -> None:
        self.changed = asyncio.Event()
        self.snapshots = 0
        options = {} if rcvbuf is None else {"rcvbuf": rcvbuf}
        self.watcher = RtnlWatcher(self._on_change, netns=ns.name, **options)

    def _on_change(self, state: NetState) -> None:
        self.snapshots += 1
        self.changed.set()

    async def until(self, predicate: Callable[[NetState], bool], seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while not predicate(self.watcher.state):
                self.changed.clear()
                await self.changed.wait()


def setup_links(ns: Netns) -> None:
    """wan0 (IPv4 + IPv6, default routes) and lan0, veth pairs inside the namespace."""
    for name in ("wan0", "lan0"):
        ns.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        ns.ip("link", "set", name, "up")
        ns.ip("link", "set", f"{name}p", "up")
    ns.ip("addr", "add", "192.0.2.10/24", "dev", "wan0")
    ns.ip("-6", "addr", "add", "2001:db8:1::10/64", "dev", "wan0", "nodad")
    ns.ip("addr", "add", "198.51.100.10/24", "dev", "lan0")
    ns.ip("route", "add", "default", "via", "192.0.2.1", "metric", "100")
    ns.ip("-6", "route", "add", "default", "via", "2001:db8:1::1", "metric", "100")


def kernel_defaults(ns: Netns, state: NetState) -> frozenset[DefaultRoute]:
    """What `ip -j route show default` says, in the watcher's vocabulary."""
    routes = set()
    for family, flag in ((Family.IPV4, "-4"), (Family.IPV6, "-6")):
        shown = json.loads(ns.ip("-j", flag, "route", "show", "default", "table", "main").stdout)
        for route in shown:
            link = state.link_by_name(route["dev"])
            assert link is not None
            gateway = route.get("gateway")
            address = ipaddress.ip_address(gateway) if gateway else None
            routes.add(DefaultRoute(family, link.ifindex, route.get("metric", 0), address))
    return frozenset(routes)


@pytest.fixture
async def watched(ns: Netns) -> AsyncIterator[Watched]:
    setup_links(ns)
    watched = Watched(ns)
    await watched.watcher.start()
    yield watched
    await watched.watcher.close()


async def test_initial_dump_sees_links_addresses_and_default_routes(
    ns: Netns, watched: Watched
) -> None:
    state = watched.watcher.state
    wan, lan = state.link_by_name("wan0"), state.link_by_name("lan0")
    assert wan is not None and wan.up and lan is not None
    addresses = {(a.ifindex, str(a.address)) for a in state.addresses}
    assert {(wan.ifindex, "192.0.2.10"), (wan.ifindex, "2001:db8:1::10")} <= addresses
    assert state.default_routes == kernel_defaults(ns, state)
    best = state.best_default_route(Family.IPV6)
    assert best == DefaultRoute(
        Family.IPV6, wan.ifindex, 100, ipaddress.ip_address("2001:db8:1::1")
    )


async def test_replace_with_a_lower_metric_changes_the_best_route(
    ns: Netns, watched: Watched
) -> None:
    lan = watched.watcher.state.link_by_name("lan0")
    assert lan is not None
    ns.ip("route", "replace", "default", "via", "198.51.100.1", "metric", "50")

    def lan_is_best(state: NetState) -> bool:
        best = state.best_default_route(Family.IPV4)
        return best is not None and best.ifindex == lan.ifindex and best.metric == 50

    await watched.until(lan_is_best)
    ns.ip("route", "replace", "default", "via", "198.51.100.2", "metric", "50")
    await watched.until(
        lambda s: (
            s.best_default_route(Family.IPV4)
            == DefaultRoute(Family.IPV4, lan.ifindex, 50, ipaddress.ip_address("198.51.100.2"))
        )
    )
    assert watched.watcher.state.default_routes == kernel_defaults(ns, watched.watcher.state)


async def test_link_down_up_rename_delete(ns: Netns, watched: Watched) -> None:
    wan = watched.watcher.state.link_by_name("wan0")
    assert wan is not None
    ns.ip("link", "set", "wan0", "down")
    await watched.until(lambda s: not s.links[wan.ifindex].up)
    await watched.until(lambda s: s.default_routes == kernel_defaults(ns, s))
    assert not any(r.ifindex == wan.ifindex for r in watched.watcher.state.default_routes)
    ns.ip("link", "set", "wan0", "up")
    await watched.until(lambda s: s.links[wan.ifindex].up)
    ns.ip("link", "set", "wan0", "name", "uplink0")
    await watched.until(lambda s: s.links[wan.ifindex].name == "uplink0")
    ns.ip("link", "del", "uplink0")
    await watched.until(lambda s: wan.ifindex not in s.links)
    state = watched.watcher.state
    assert not any(a.ifindex == wan.ifindex for a in state.addresses)
    assert not any(r.ifindex == wan.ifindex for r in state.default_routes)


async def test_non_default_routes_are_dropped_by_the_kernel_filter(
    ns: Netns, watched: Watched, tmp_path: Path
) -> None:
    batch = tmp_path / "routes.batch"
    batch.write_text("".join(f"route add 203.0.113.{i}/32 via 192.0.2.1\n" for i in range(100)))
    before = watched.watcher.state
    ns.ip("-batch", str(batch))
    # A default route added afterwards is the barrier: once it is seen, every
    # earlier notification has been read (one socket, kernel order).
    ns.ip("route", "add", "default", "via", "198.51.100.1", "metric", "300")
    await watched.until(lambda s: any(r.metric == 300 for r in s.default_routes))
    assert watched.watcher.route_notifications == 1
    assert watched.watcher.state.default_routes - before.default_routes == {
        r for r in watched.watcher.state.default_routes if r.metric == 300
    }


async def test_overrun_ends_in_a_resync_that_matches_the_kernel(ns: Netns, tmp_path: Path) -> None:
    setup_links(ns)
    watched = Watched(ns, rcvbuf=4096)
    await watched.watcher.start()
    try:
        lines = [f"route add default via 192.0.2.1 metric {m}\n" for m in range(1000, 6000)]
        lines += [f"route del default via 192.0.2.1 metric {m}\n" for m in range(1000, 5990)]
        batch = tmp_path / "flood.batch"
        batch.write_text("".join(lines))
        ns.ip("-batch", str(batch))  # blocks the loop: nothing is read during the flood
        await watched.until(lambda s: watched.watcher.resyncs >= 1, seconds=30)
        await watched.watcher.wait_resynced()
        state = watched.watcher.state
        assert state.default_routes == kernel_defaults(ns, state)
        assert len([r for r in state.default_routes if r.metric >= 1000]) == 10
    finally:
        await watched.watcher.close()
