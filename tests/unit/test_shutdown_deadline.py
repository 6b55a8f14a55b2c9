"""The daemon's shutdown is bounded even when a part never finishes closing (app.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from netpathd.app import Step, finish_within
from netpathd.tasks import cancel_until_done

DEADLINE = 0.2


async def test_the_steps_run_in_order_and_none_is_left() -> None:
    ran: list[str] = []

    def step(name: str) -> Step:
        async def close() -> None:
            await asyncio.sleep(0)
            ran.append(name)

        return name, close

    steps = [step("first"), step("second")]
    assert await finish_within(DEADLINE, steps) is None
    assert ran == ["first", "second"]


async def test_a_step_that_never_ends_is_named_at_the_deadline() -> None:
    """It also ignores cancellation, which defeats a bound such as asyncio.timeout."""
    release, finished = asyncio.Event(), asyncio.Event()
    later: list[str] = []

    async def stuck() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        finished.set()

    async def after() -> None:
        later.append("after")

    started = time.monotonic()
    assert await finish_within(DEADLINE, [("the stuck part", stuck), ("after", after)]) == (
        "the stuck part"
    )
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 5
    assert later == []
    release.set()
    await asyncio.wait_for(finished.wait(), 5)


async def test_a_step_that_raises_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise OSError("EBADF")

    async def after() -> None:
        ran.append("after")

    with caplog.at_level(logging.ERROR, logger="netpathd"):
        assert (
            await finish_within(DEADLINE, [("the broken part", broken), ("after", after)]) is None
        )
    assert ran == ["after"]
    assert "closing the broken part failed" in caplog.text


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    """As Python 3.11's wait_for does when its result comes in the turn of the cancel."""

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_until_done({task}), 5)
    assert task.cancelled()
