"""Reload() against a real daemon: a bad admin file changes nothing anywhere (issue 8, 7-8).

The three admin files are read and checked before any of them is applied; a file
that cannot be read (a NUL byte, a FIFO) is an InvalidConfiguration naming it, and
the daemon keeps answering.  ``ip mptcp`` and the files on disk are the witnesses.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_mptcp_kernel import endpoints
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon
from tests.support.dbus_client import BusClient, CallError, bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

MANAGER = "org.netpathd1.Manager"
DNS = "org.netpathd1.Dns"
GOOD_MPTCP = '[endpoint "192.0.2.1"]\nflags = subflow\ninterface = eth1\n'
GOOD_DNS = (
    '[connection "wan"]\nconnection.interface-name = eth1\nconnection.type = ethernet\n'
    "ipv4.dns = 192.0.2.53\n"
)


@pytest.fixture
def daemon(eth_ns: Netns, bus: PrivateBus, tmp_path: Path) -> Iterator[Daemon]:
    """netpathd with GOOD_MPTCP as the administrator's mptcp.conf, ready."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mptcp.conf").write_text(GOOD_MPTCP)
    with running_daemon(eth_ns, bus, tmp_path) as started:
        yield started


def state_files(daemon: Daemon) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in daemon.state_dir.iterdir() if path.is_file()}


async def refused_reload(client: BusClient) -> CallError:
    with pytest.raises(CallError) as refused:
        await client.call(MANAGER, "Reload")
    assert refused.value.name == "org.netpathd1.Error.InvalidConfiguration"
    return refused.value


async def connection_names(client: BusClient) -> list[str]:
    (connections,) = await client.call(DNS, "GetConnections")
    return [name for name, _ in connections]


async def test_a_nul_byte_keeps_the_last_good_configuration_whole(
    daemon: Daemon, eth_ns: Netns, bus: PrivateBus
) -> None:
    config = daemon.config_dir / "mptcp.conf"
    before = endpoints(eth_ns)
    assert before == "192.0.2.1 id 1 subflow dev eth1 \n"
    files = state_files(daemon)
    config.write_bytes(GOOD_MPTCP.replace("eth1", "eth1\0x").encode())
    async with bus_client(bus.address) as client:
        refused = await refused_reload(client)
        assert refused.text == f"{config}:3: contains a NUL byte"
        assert endpoints(eth_ns) == before
        assert state_files(daemon) == files
        config.write_text(GOOD_MPTCP)
        await client.call(MANAGER, "Reload")
    assert endpoints(eth_ns) == before


async def test_a_fifo_is_refused_promptly_and_the_daemon_stays_responsive(
    daemon: Daemon, eth_ns: Netns, bus: PrivateBus
) -> None:
    fifo = daemon.config_dir / "dns.conf"
    os.mkfifo(fifo)
    async with bus_client(bus.address) as client:
        started = time.monotonic()
        refused = await refused_reload(client)
        # Generous on a loaded machine; a blocking open() would never answer at all.
        assert time.monotonic() - started < 10
        assert refused.text == f"{fifo}:0: not a regular file (a FIFO)"
        await client.call("org.freedesktop.DBus.Peer", "Ping")
        assert (await client.get(MANAGER, "State")) == "running"
    assert endpoints(eth_ns) == "192.0.2.1 id 1 subflow dev eth1 \n"


BAD_FILES = [
    ("mptcp.conf", '[endpoint "192.0.2.1"]\nflags = turbo\n', 2),
    ("mptcp.conf", '[endpoint "fe80::1%eth1"]\nflags = subflow\n', 1),
    ("mptcp.conf", '[endpoint "192.0.2.9"]\ninterface = ' + "e" * 300 + "\n", 2),
    ("dns.conf", '[connection "wan"]\nconnection.type = ethernet\n', 1),
    ("netpathd.conf", "[main]\nrc-manager = sometimes\n", 2),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=lambda case: case[0])
async def test_one_bad_file_keeps_all_three_as_they_were(
    daemon: Daemon, eth_ns: Netns, bus: PrivateBus, case: tuple[str, str, int]
) -> None:
    bad_file, bad_text, line = case
    good = {
        "netpathd.conf": "[main]\nlog-level = debug\n",
        "dns.conf": GOOD_DNS,
        "mptcp.conf": GOOD_MPTCP + '\n[endpoint "198.51.100.7"]\nflags = signal\n',
    }
    before = endpoints(eth_ns)
    files = state_files(daemon)
    for name, text in {**good, bad_file: bad_text}.items():
        (daemon.config_dir / name).write_text(text)
    async with bus_client(bus.address) as client:
        refused = await refused_reload(client)
        assert refused.text.startswith(f"{daemon.config_dir / bad_file}:{line}: ")
        assert (await client.get(MANAGER, "LogLevel")) == "info"
        assert await connection_names(client) == []
        assert endpoints(eth_ns) == before
        assert not daemon.resolv_conf.exists()
        assert state_files(daemon) == files
        # Once the bad file is fixed, all three apply together.
        (daemon.config_dir / bad_file).write_text(good[bad_file])
        await client.call(MANAGER, "Reload")
        assert (await client.get(MANAGER, "LogLevel")) == "debug"
        assert await connection_names(client) == ["wan"]
    assert "198.51.100.7 id 2 signal \n" in endpoints(eth_ns)


def test_a_reload_that_fails_half_way_still_says_ready(daemon: Daemon) -> None:
    """systemd waits for READY=1 after a service's RELOADING=1 (sd_notify(3)): a SIGHUP
    reload that fails while applying must still send it, or `systemctl reload` hangs."""
    daemon.resolv_conf.unlink(missing_ok=True)
    daemon.resolv_conf.mkdir()  # the resolver file can no longer be replaced
    (daemon.config_dir / "dns.conf").write_text(GOOD_DNS)  # eth1 is up: a new resolver file
    daemon.messages.clear()  # the start's READY=1
    daemon.signal(signal.SIGHUP)
    daemon.wait_notify("RELOADING=1", timeout=30)
    daemon.wait_notify("READY=1", timeout=30)
    assert "reload failed: cannot write" in daemon.stderr()
