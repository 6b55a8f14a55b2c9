from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.netns import Netns, netns


@pytest.fixture
def ns() -> Iterator[Netns]:
    """A fresh network namespace with loopback up, deleted after the test."""
    with netns() as created:
        yield created
