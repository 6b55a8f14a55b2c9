"""Floods of allowed calls must not take the daemon down (issue 8 item 1).

Reads are open to every local user, so a flood of them is the cheapest attack there is.
The daemon must stay up and answer every call: a result, or a clear error when the
per-client bound refuses it. NoReply or ServiceUnknown would mean the daemon went away.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.bus import ROOT, PrivateBus
from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration

# What a refused call may be answered with: our own bound, or the bus's (128 per client).
REFUSALS = {"org.netpathd1.Error.LimitsExceeded", "org.freedesktop.DBus.Error.LimitsExceeded"}


def flood(
    bus: PrivateBus,
    kind: str,
    connections: int,
    calls: int,
    in_flight: int,
    *,
    unprivileged: bool,
) -> dict[str, int]:
    command = [
        sys.executable,
        "-m",
        "tests.support.flood_client",
        f"--socket={bus.directory / 'bus.socket'}",
        f"--kind={kind}",
        f"--connections={connections}",
        f"--calls={calls}",
        f"--in-flight={in_flight}",
    ]
    if unprivileged:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] == []
    assert report["unanswered"] == 0
    replies: dict[str, int] = report["replies"]
    assert sum(replies.values()) == calls
    return replies


def assert_survived(daemon: Daemon, bus: PrivateBus, replies: dict[str, int]) -> None:
    assert daemon.process.poll() is None, daemon.stop()
    assert set(replies) - {"ok"} <= REFUSALS, replies
    assert replies.get("ok", 0) > 0, replies
    bus.busctl("call", "org.netpathd1", "/org/netpathd1", "org.freedesktop.DBus.Peer", "Ping")


@pytest.mark.parametrize("kind", ["ping", "get", "introspect"])
def test_unprivileged_flood_leaves_the_daemon_up(
    daemon: Daemon, bus: PrivateBus, kind: str
) -> None:
    replies = flood(bus, kind, connections=4, calls=20_000, in_flight=400, unprivileged=True)
    assert_survived(daemon, bus, replies)


def test_root_flood_from_ten_clients_leaves_the_daemon_up(daemon: Daemon, bus: PrivateBus) -> None:
    replies = flood(bus, "get", connections=10, calls=10_000, in_flight=500, unprivileged=False)
    assert_survived(daemon, bus, replies)
