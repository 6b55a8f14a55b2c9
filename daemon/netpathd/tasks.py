"""Stopping asyncio tasks for good.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that lands in the turn its
result does (python/cpython gh-86296, fixed in 3.12): such a task goes on to its next
wait, and a single ``cancel()`` would leave it running.  The daemon's shutdown and the
DNS back-ends' close both need their tasks gone, so they cancel again until they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

CANCEL_AGAIN_AFTER = 0.1  # s: a task that swallowed its cancellation is cancelled again


async def cancel_until_done(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks``, again and again, until all have ended."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_AFTER)
