"""How network changes become reconcile rounds: a burst is one round, on the newest state.

The rtnetlink watcher hands over one snapshot per batch of notifications; the
manager keeps only the latest and one flag, so snapshots that arrive before
its task runs cost one round together.  No kernel here: the reconciler is a
fake that records the state each round saw.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from netpathd.model.links import Link, NetState
from netpathd.mptcp_manager import MptcpManager


class CountingReconciler:
    def __init__(self) -> None:
        self.state: NetState | None = None
        self.seen: list[NetState | None] = []
        self.round_done = asyncio.Event()

    def wants_network(self, state: NetState) -> bool:
        return True

    async def network(self) -> dict[str, object]:
        await asyncio.sleep(0)  # a real round awaits the kernel: other tasks run meanwhile
        self.seen.append(self.state)
        self.round_done.set()
        return {}


def snapshot(n: int) -> NetState:
    return NetState(links={2: Link(2, f"eth{n}", up=True)})


async def test_a_burst_of_snapshots_is_one_round_on_the_latest(tmp_path: Path) -> None:
    manager = MptcpManager(tmp_path / "config", tmp_path / "state", tmp_path / "run")
    reconciler = CountingReconciler()
    manager._reconciler = reconciler  # type: ignore[assignment]
    manager._unavailable = None
    rounds = asyncio.create_task(manager.run_network())
    try:
        states = [snapshot(n) for n in range(10)]
        for state in states:
            manager.network_changed(state)
        async with asyncio.timeout(5):
            await reconciler.round_done.wait()
        for _ in range(10):  # give a second round every chance to run
            await asyncio.sleep(0)
        assert reconciler.seen == [states[-1]]
        reconciler.round_done.clear()
        manager.network_changed(snapshot(11))  # a later change is a round of its own
        async with asyncio.timeout(5):
            await reconciler.round_done.wait()
        assert len(reconciler.seen) == 2
    finally:
        rounds.cancel()
        await asyncio.gather(rounds, return_exceptions=True)
