"""Fixtures shared by integration, contract and end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bus import PrivateBus, private_bus
from tests.support.daemon import Daemon, running_daemon
from tests.support.netns import Netns, netns, veth


@pytest.fixture
def ns() -> Iterator[Netns]:
    """A fresh network namespace with loopback up, deleted after the test."""
    with netns() as created:
        yield created


@pytest.fixture
def eth_ns(ns: Netns) -> Iterator[Netns]:
    """``ns`` with a veth end "eth1" holding 192.0.2.1/24."""
    with netns() as peer:
        veth(ns, "eth1", peer, "eth1")
        ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
        yield ns


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    """A private system-like dbus-daemon with dbus/org.netpathd1.conf installed."""
    with private_bus() as created:
        yield created


@pytest.fixture
def daemon(ns: Netns, bus: PrivateBus, tmp_path: Path) -> Iterator[Daemon]:
    """netpathd running in ``ns`` on ``bus``, ready (READY=1 received)."""
    with running_daemon(ns, bus, tmp_path) as started:
        yield started
