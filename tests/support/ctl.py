"""Run netpathctl as a user would, as a separate process."""

from __future__ import annotations

import subprocess
import sys

from tests.support.daemon import daemon_env


def netpathctl(bus_address: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netpathd.ctl.main", f"--bus-address={bus_address}", *argv],
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def netpathctl_ok(bus_address: str, *argv: str) -> str:
    """netpathctl's stdout; the test fails with its stderr when it exits non-zero."""
    result = netpathctl(bus_address, *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout
