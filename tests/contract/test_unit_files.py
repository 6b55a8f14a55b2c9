"""systemd and bus files are valid and agree with each other."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "netpathd.service"
ACTIVATION = ROOT / "dbus" / "org.netpathd1.service"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@needs_systemd_analyze
@pytest.mark.integration
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists; point it at this interpreter.
    unit = tmp_path / "netpathd.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/netpathd", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "netpathd.service" not in result.stderr, result.stderr


@needs_systemd_analyze
@pytest.mark.integration
def test_unit_exposure_stays_at_most_as_low_as_systemd_resolved() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=22", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_activation_file_names_the_unit_and_the_bus_name() -> None:
    activation = read_ini(ACTIVATION)["D-BUS Service"]
    unit = read_ini(UNIT)
    assert activation["Name"] == unit["Service"]["BusName"] == "org.netpathd1"
    assert activation["SystemdService"] == UNIT.name
    assert activation["User"] == "root"
    assert unit["Install"]["Alias"] == "dbus-org.netpathd1.service"


def seconds(value: str) -> float:
    """A systemd time span as written in this unit: plain seconds, or with s/ms/min."""
    for suffix, factor in (("ms", 0.001), ("min", 60.0), ("s", 1.0)):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_restart_policy_survives_a_crash_loop() -> None:
    """A crash loop must never leave the service stopped (issue 8 item 1).

    systemd stops restarting a unit that starts StartLimitBurst= times (default 5) within
    StartLimitIntervalSec= (default 10 s); a caller able to crash it every second would
    leave it dead. systemd 252 (Debian 12) has no RestartSteps=/RestartMaxDelaySec=
    (254), so the limit is switched off and RestartSec= keeps the loop from spinning.
    """
    unit = read_ini(UNIT)
    assert unit["Service"]["Restart"] in {"on-failure", "always"}
    assert seconds(unit["Unit"].get("StartLimitIntervalSec", "10s")) == 0
    assert seconds(unit["Service"]["RestartSec"]) >= 2


def test_unit_grants_exactly_what_attaching_the_bpf_program_needs() -> None:
    """CAP_BPF + CAP_PERFMON suffice to load and attach it (measured); @system-service
    leaves out bpf(2); --bpf-pin writes under bpffs."""
    lines = UNIT.read_text().splitlines()
    assert "CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF CAP_PERFMON" in lines
    assert [line for line in lines if line.startswith("SystemCallFilter=")] == [
        "SystemCallFilter=@system-service",
        "SystemCallFilter=bpf",
    ]
    assert "ReadWritePaths=-/sys/fs/bpf" in lines
    assert not [line for line in lines if line.startswith("AmbientCapabilities=")]
