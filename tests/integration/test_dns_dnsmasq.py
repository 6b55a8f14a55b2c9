"""dns=dnsmasq with the real dnsmasq: netpathd's own instance, split DNS proven with dig."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.split_dns import (
    DNS,
    SplitDns,
    prepare,
    run_scenario,
    split_dns,
    wait_state,
)
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon, start_daemon
from tests.support.dbus_client import bus_client
from tests.support.dns_servers import DNSMASQ
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


@pytest.fixture
def split(ns: Netns, tmp_path: Path) -> Iterator[SplitDns]:
    with split_dns(ns, tmp_path, "127.0.0.1") as made:
        yield made


@pytest.fixture
def dnsmasq_daemon(ns: Netns, bus: PrivateBus, tmp_path: Path) -> Iterator[Daemon]:
    prepare(tmp_path, "dnsmasq")
    with running_daemon(ns, bus, tmp_path) as started:
        yield started


def dnsmasq_pids(ns: Netns) -> list[int]:
    """netpathd's dnsmasq: the one listening on 127.0.0.1:53 in the client namespace."""
    out = ns.exec("ss", "-Hlnup", "src", "127.0.0.1:53").stdout
    return sorted(
        {int(part.split("=")[1]) for part in out.replace(",", " ").split() if "pid=" in part}
    )


async def test_split_dns_through_dnsmasq(
    dnsmasq_daemon: Daemon, bus: PrivateBus, ns: Netns, split: SplitDns
) -> None:
    async with bus_client(bus.address) as client:
        assert await client.get(DNS, "Mode") == "dnsmasq"
        await wait_state(client, "running")
        text = dnsmasq_daemon.resolv_conf.read_text()
        assert "nameserver 127.0.0.1\n" in text
        assert text.count("nameserver") == 1
        await run_scenario(split, client, ns)


async def test_kill_9_of_dnsmasq_is_restored(
    dnsmasq_daemon: Daemon, bus: PrivateBus, ns: Netns, split: SplitDns
) -> None:
    async with bus_client(bus.address) as client:
        await wait_state(client, "running")
        split.wait_route("corp.example", split.corp)
        (pid,) = dnsmasq_pids(ns)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await client.wait_change(
            DNS, "BackendState", "restarting: dnsmasq exited (killed by SIGKILL)"
        )
        await client.wait_change(DNS, "BackendState", "running")
        split.wait_route("corp.example", split.corp)
        restored = time.monotonic() - killed
        split.only("back.corp.example", split.corp)
        split.only("back.example.org", split.wan)
        print(f"dnsmasq kill -9 -> queries answered again after {restored * 1000:.0f} ms")
        assert dnsmasq_pids(ns) != [pid]


async def test_a_dnsmasq_left_by_a_killed_netpathd_is_replaced(
    ns: Netns, bus: PrivateBus, tmp_path: Path, split: SplitDns
) -> None:
    """kill -9 of netpathd leaves its dnsmasq holding the name and 127.0.0.1:53 (outside a
    service manager's cgroup kill); the next netpathd stops it and starts its own."""
    prepare(tmp_path, "dnsmasq")
    first = start_daemon(ns, bus, tmp_path)
    try:
        async with bus_client(bus.address) as client:
            await wait_state(client, "running")
        (stale,) = dnsmasq_pids(ns)
        first.process.kill()
    finally:
        first.stop()
    try:
        with running_daemon(ns, bus, tmp_path):
            async with bus_client(bus.address) as client:
                await wait_state(client, "running")
                split.wait_route("corp.example", split.corp)
            pids = dnsmasq_pids(ns)
            assert stale not in pids
            assert len(pids) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stale, signal.SIGKILL)  # never leak it, whatever happened above


async def test_switching_modes_leaves_nothing_behind(
    dnsmasq_daemon: Daemon, bus: PrivateBus, ns: Netns, split: SplitDns
) -> None:
    async with bus_client(bus.address) as client:
        await wait_state(client, "running")
        (pid,) = dnsmasq_pids(ns)
        (dnsmasq_daemon.config_dir / "netpathd.conf").write_text("[main]\ndns = default\n")
        await client.call("org.netpathd1.Manager", "Reload")
        assert await client.get(DNS, "Mode") == "default"
        assert dnsmasq_pids(ns) == []
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        names = bus.busctl("--no-legend", "list").split()
        assert "org.netpathd1.dnsmasq" not in names
        text = dnsmasq_daemon.resolv_conf.read_text()
        assert "127.0.0.1" not in text
        assert "nameserver 198.51.100.53" in text and "nameserver 203.0.113.53" in text


async def test_a_missing_dnsmasq_keeps_the_last_good_file_until_it_appears(
    ns: Netns, bus: PrivateBus, tmp_path: Path, split: SplitDns
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    prepare(tmp_path, "dnsmasq")
    last_good = "nameserver 192.0.2.1\n"
    (tmp_path / "resolv.conf").write_text(last_good)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    with running_daemon(ns, bus, tmp_path, env=env) as daemon:
        async with bus_client(bus.address) as client:
            await wait_state(client, "unavailable: no dnsmasq binary (install dnsmasq-base)")
            assert daemon.resolv_conf.read_text() == last_good
            (bin_dir / "dnsmasq").symlink_to(DNSMASQ)
            await wait_state(client, "running")
            assert "nameserver 127.0.0.1" in daemon.resolv_conf.read_text()
            split.wait_route("corp.example", split.corp)
