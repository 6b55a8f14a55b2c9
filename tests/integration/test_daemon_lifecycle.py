"""The daemon as a system service: name, properties, signals, policy, reload."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, daemon_argv, daemon_env, running_daemon
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

MANAGER = ("org.netpathd1", "/org/netpathd1", "org.netpathd1.Manager")


def test_busctl_reads_version_and_state(daemon: Daemon, bus: PrivateBus) -> None:
    assert bus.busctl("get-property", *MANAGER, "Version").strip() == 's "0.1.0"'
    assert bus.busctl("get-property", *MANAGER, "State").strip() == 's "running"'
    names = bus.busctl("list", "--no-pager", "--acquired")
    assert "org.netpathd1" in names


def test_peer_ping_answers(daemon: Daemon, bus: PrivateBus) -> None:
    bus.busctl("call", "org.netpathd1", "/org/netpathd1", "org.freedesktop.DBus.Peer", "Ping")


def test_sigterm_stops_cleanly_within_one_second(daemon: Daemon) -> None:
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    returncode = daemon.process.wait(timeout=5)
    elapsed = time.monotonic() - started
    assert returncode == 0, daemon.stop()
    assert elapsed < 1.0
    daemon.wait_notify("STOPPING=1", timeout=1)


def test_second_instance_refuses_to_start(
    daemon: Daemon, bus: PrivateBus, ns: Netns, tmp_path: Path
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    result = subprocess.run(
        daemon_argv(ns, bus.address, second),
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "org.netpathd1 is already owned" in result.stderr
    assert bus.busctl("get-property", *MANAGER, "State").strip() == 's "running"'


def test_unprivileged_user_reads_but_cannot_reload(daemon: Daemon, bus: PrivateBus) -> None:
    version = bus.busctl("get-property", *MANAGER, "Version", unprivileged=True)
    assert version.strip() == 's "0.1.0"'
    refused = bus.busctl_result("call", *MANAGER, "Reload", unprivileged=True)
    assert refused.returncode != 0
    assert "polkit is not running on this bus, so only root may" in refused.stderr
    bus.busctl("call", *MANAGER, "Reload")  # root may


async def test_sighup_reloads_configuration(daemon: Daemon, bus: PrivateBus) -> None:
    async with bus_client(bus.address) as client:
        (daemon.config_dir / "netpathd.conf").write_text("[main]\nlog-level = debug\n")
        daemon.signal(signal.SIGHUP)
        await client.wait_change(MANAGER[2], "LogLevel", "debug")
    assert bus.busctl("get-property", *MANAGER, "LogLevel").strip() == 's "debug"'


def test_bad_configuration_on_reload_keeps_the_last_good_one(
    daemon: Daemon, bus: PrivateBus
) -> None:
    config = daemon.config_dir / "netpathd.conf"
    config.write_text("[main]\nlog-level = debug\n")
    bus.busctl("call", *MANAGER, "Reload")
    config.write_text("[main]\n# comment\nlog-level = loud\n")
    result = bus.busctl_result("call", *MANAGER, "Reload")
    assert result.returncode != 0
    assert f"{config}:3: log-level must be one of" in result.stderr
    assert bus.busctl("get-property", *MANAGER, "LogLevel").strip() == 's "debug"'
    daemon.signal(signal.SIGHUP)  # the same bad file via SIGHUP: logged, daemon lives on
    assert bus.busctl("get-property", *MANAGER, "State").strip() == 's "running"'
    stderr = daemon.stop()
    assert f"{config}:3: log-level must be one of" in stderr


def test_dbus_activation_starts_the_daemon(bus: PrivateBus, ns: Netns, tmp_path: Path) -> None:
    for sub in ("config", "state"):
        (tmp_path / sub).mkdir()
    argv = daemon_argv(ns, bus.address, tmp_path)
    pythonpath = daemon_env()["PYTHONPATH"]
    activation = (Path(__file__).parents[2] / "dbus" / "org.netpathd1.service").read_text()
    exec_line = "Exec=/usr/bin/env PYTHONPATH=" + pythonpath + " " + " ".join(argv)
    activation = "\n".join(
        exec_line if line.startswith("Exec=") else line for line in activation.splitlines()
    )
    (bus.service_dir / "org.netpathd1.service").write_text(activation + "\n")
    bus.busctl(
        "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "ReloadConfig",
    )  # fmt: skip
    assert "org.netpathd1" not in bus.busctl("list", "--no-pager", "--acquired")

    version = bus.busctl("--timeout=20", "get-property", *MANAGER, "Version")
    assert version.strip() == 's "0.1.0"'

    pid_reply = bus.busctl(
        "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "GetConnectionUnixProcessID", "s", "org.netpathd1",
    )  # fmt: skip
    pid = int(pid_reply.split()[1])
    # Not our child (the bus started it): a pidfd tells when it is gone.
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGTERM)
        readable, _, _ = select.select([pidfd], [], [], 5)
        assert readable, "the activated daemon did not stop within 5 s"
    finally:
        os.close(pidfd)


def test_watchdog_is_pinged_when_systemd_asks(bus: PrivateBus, ns: Netns, tmp_path: Path) -> None:
    with running_daemon(ns, bus, tmp_path, env={"WATCHDOG_USEC": "200000"}) as daemon:
        daemon.messages.clear()
        daemon.wait_notify("WATCHDOG=1", timeout=2)
        daemon.messages.clear()
        daemon.wait_notify("WATCHDOG=1", timeout=2)  # and again: it is periodic


def test_no_watchdog_pings_for_another_process(bus: PrivateBus, ns: Netns, tmp_path: Path) -> None:
    env = {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
    with running_daemon(ns, bus, tmp_path, env=env) as daemon:
        daemon.signal(signal.SIGTERM)
        daemon.wait_notify("STOPPING=1", timeout=5)
        assert not any("WATCHDOG=1" in message for message in daemon.messages)


def test_bus_address_from_the_environment(bus: PrivateBus, ns: Netns, tmp_path: Path) -> None:
    env = {"NETPATHD_BUS_ADDRESS": bus.address}
    with running_daemon(ns, bus, tmp_path, env=env) as daemon:
        assert not any(arg.startswith("--bus-address") for arg in daemon.process.args)
        assert bus.busctl("get-property", *MANAGER, "State").strip() == 's "running"'
        status = subprocess.run(
            [sys.executable, "-m", "netpathd.ctl.main", "status"],
            env={**daemon_env(), **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "State: running" in status.stdout
