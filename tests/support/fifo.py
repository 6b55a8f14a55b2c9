"""A FIFO where a regular file belongs, for tests proving that nothing blocks on one."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UNBLOCK_AFTER = 5.0


@contextmanager
def fifo_at(path: Path) -> Iterator[None]:
    """Make ``path`` a FIFO for the block's duration.

    Should the code under test block reading it, a writer opens it after UNBLOCK_AFTER seconds
    and lets the read finish, so the test fails on its time bound instead of hanging.
    """
    os.mkfifo(path)
    unblock = threading.Timer(UNBLOCK_AFTER, lambda: path.open("w").close())
    unblock.daemon = True
    unblock.start()
    try:
        yield
    finally:
        unblock.cancel()
