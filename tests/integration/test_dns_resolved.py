"""dns=systemd-resolved with the real resolved (its .deb extracted, never installed)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from dbus_fast import Variant

from tests.integration.split_dns import (
    DNS,
    SplitDns,
    prepare,
    run_scenario,
    split_dns,
    wait_state,
)
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns
from tests.support.resolved import RESOLVED_BINARY, Resolved, holder, holder_bus, resolved

pytestmark = pytest.mark.integration

STUB = "/run/systemd/resolve/stub-resolv.conf"


@dataclass
class Frame:
    split: SplitDns
    bus: PrivateBus
    resolved: Resolved
    daemon: Daemon


@contextmanager
def resolved_frame(ns: Netns, tmp_path: Path, *, start: bool = True) -> Iterator[Frame]:
    assert RESOLVED_BINARY.exists(), "run scripts/setup: it extracts systemd-resolved"
    with (
        split_dns(ns, tmp_path, "127.0.0.53") as split,
        holder(ns, tmp_path) as held,
        holder_bus(held) as bus,
        resolved(held, bus, start=start) as running,
    ):
        prepare(tmp_path, "systemd-resolved")
        with running_daemon(ns, bus, tmp_path) as daemon:
            yield Frame(split, bus, running, daemon)


@pytest.fixture
def frame(ns: Netns, tmp_path: Path) -> Iterator[Frame]:
    with resolved_frame(ns, tmp_path) as made:
        yield made


async def test_split_dns_through_resolved(frame: Frame, ns: Netns) -> None:
    async with bus_client(frame.bus.address) as client:
        assert await client.get(DNS, "Mode") == "systemd-resolved"
        await wait_state(client, "running")
        assert os.readlink(frame.daemon.resolv_conf) == STUB
        status = frame.resolved.status()
        assert "~corp.example" in status, status
        await run_scenario(frame.split, client, ns)
        status = frame.resolved.status()
        assert "198.51.100.53" not in status, f"corp0 was not reverted:\n{status}"


async def test_kill_9_of_resolved_is_restored(frame: Frame) -> None:
    split = frame.split
    async with bus_client(frame.bus.address) as client:
        await wait_state(client, "running")
        split.wait_route("corp.example", split.corp)
        frame.resolved.kill()
        await client.wait_change(DNS, "BackendState", "unavailable: systemd-resolved left the bus")
        restarted = time.monotonic()
        frame.resolved.start()
        await client.wait_change(DNS, "BackendState", "running")
        split.wait_route("corp.example", split.corp)
        restored = time.monotonic() - restarted
        split.only("back.corp.example", split.corp)
        split.only("back.example.org", split.wan)
        print(
            f"resolved kill -9 + restart -> queries answered again after {restored * 1000:.0f} ms"
        )


async def test_switching_modes_reverts_every_link(frame: Frame) -> None:
    async with bus_client(frame.bus.address) as client:
        await wait_state(client, "running")
        assert "198.51.100.53" in frame.resolved.status()
        (frame.daemon.config_dir / "netpathd.conf").write_text("[main]\ndns = default\n")
        await client.call("org.netpathd1.Manager", "Reload")
        assert await client.get(DNS, "Mode") == "default"
        status = frame.resolved.status()
        assert "198.51.100.53" not in status and "203.0.113.53" not in status, status
        assert not frame.daemon.resolv_conf.is_symlink()
        text = frame.daemon.resolv_conf.read_text()
        assert "nameserver 198.51.100.53" in text and "127.0.0.53" not in text


async def test_without_resolved_the_last_good_file_stays_until_it_appears(
    ns: Netns, tmp_path: Path
) -> None:
    last_good = "nameserver 192.0.2.1\n"
    (tmp_path / "resolv.conf").write_text(last_good)
    with resolved_frame(ns, tmp_path, start=False) as made:
        async with bus_client(made.bus.address) as client:
            await wait_state(client, "unavailable: systemd-resolved is not on the bus")
            assert made.daemon.resolv_conf.read_text() == last_good
            made.resolved.start()
            await wait_state(client, "running")
            assert os.readlink(made.daemon.resolv_conf) == STUB
            made.split.wait_route("corp.example", made.split.corp)
            made.split.only("late.corp.example", made.split.corp)


async def test_a_refusal_keeps_the_last_good_file_and_says_why(frame: Frame) -> None:
    """resolved refuses per-link DNS on loopback: the push fails, and nothing moves."""
    async with bus_client(frame.bus.address) as client:
        await wait_state(client, "running")
        client.drain()  # a "running" change may still be queued from before the Get's reply
        before = os.readlink(frame.daemon.resolv_conf)
        loopback = {
            "connection.interface-name": Variant("s", "lo"),
            "connection.type": Variant("s", "loopback"),
            "ipv4.dns": Variant("as", ["192.0.2.99"]),
            "ipv4.dns-search": Variant("as", ["~loop.example"]),
        }
        await client.call(DNS, "SetConnection", "sa{sv}", ["loop", loopback])
        refused = await client.next_change(DNS, "BackendState")
        assert refused.startswith("unavailable: SetLinkDNS(1) refused: "), refused
        assert "loopback" in refused
        assert os.readlink(frame.daemon.resolv_conf) == before
        await client.call(DNS, "RemoveConnection", "s", ["loop"])
        await client.wait_change(DNS, "BackendState", "running")
        frame.split.only("still.corp.example", frame.split.corp)
