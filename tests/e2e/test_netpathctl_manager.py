from __future__ import annotations

import json

import pytest

from tests.support.bus import PrivateBus
from tests.support.ctl import netpathctl
from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration


def test_status_human_and_json(daemon: Daemon, bus: PrivateBus) -> None:
    human = netpathctl(bus.address, "status")
    assert human.returncode == 0, human.stderr
    assert "State: running" in human.stdout
    expected = {"log_level": "info", "state": "running", "version": "0.1.0"}
    for argv in (["--json", "status"], ["status", "--json"], ["--json"]):
        machine = netpathctl(bus.address, *argv)
        assert machine.returncode == 0, machine.stderr
        assert json.loads(machine.stdout) == expected


def test_bare_netpathctl_shows_status(daemon: Daemon, bus: PrivateBus) -> None:
    """As ``nmcli`` and ``resolvectl`` do without a verb."""
    bare = netpathctl(bus.address)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == netpathctl(bus.address, "status").stdout


def test_reload_failure_exit_code_and_message(daemon: Daemon, bus: PrivateBus) -> None:
    config = daemon.config_dir / "netpathd.conf"
    config.write_text("[main]\nlog-level = chatty\n")
    result = netpathctl(bus.address, "reload")
    assert result.returncode == 7
    assert f"{config}:2: log-level must be one of" in result.stderr
    config.write_text("[main]\nlog-level = warning\n")
    assert netpathctl(bus.address, "reload").returncode == 0


def test_no_daemon_on_the_bus(bus: PrivateBus) -> None:
    result = netpathctl(bus.address, "status")
    assert result.returncode == 69
    assert "org.netpathd1" in result.stderr


def test_no_bus_at_all(tmp_path: object) -> None:
    result = netpathctl("unix:path=/nonexistent/netpathd-test.socket", "status")
    assert result.returncode == 69
    assert "cannot connect to unix:path=/nonexistent/netpathd-test.socket" in result.stderr
