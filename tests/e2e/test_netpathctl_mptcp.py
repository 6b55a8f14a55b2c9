"""``netpathctl mptcp`` as a user runs it, against a real daemon; ``ip mptcp`` is the witness."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.support.bus import PrivateBus
from tests.support.ctl import NETPATHCTL, netpathctl, netpathctl_ok
from tests.support.daemon import Daemon, daemon_env
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


def ok(bus: PrivateBus, *argv: str) -> str:
    return netpathctl_ok(bus.address, *argv)


def test_endpoint_add_show_change_delete(daemon: Daemon, ns: Netns, bus: PrivateBus) -> None:
    assert ok(bus, "mptcp", "endpoint", "add", "192.0.2.5", "id", "5", "subflow", "fullmesh") == ""
    ok(bus, "mptcp", "endpoint", "add", "198.51.100.7", "port", "0", "signal")
    assert ok(bus, "mptcp", "endpoint", "show") == (
        "192.0.2.5 id 5 subflow fullmesh\n198.51.100.7 id 6 signal\n"
    )
    assert ok(bus, "mptcp", "endpoint") == ok(bus, "mptcp", "endpoint", "show")
    listed = json.loads(ok(bus, "--json", "mptcp", "endpoint", "show"))
    assert listed[0] == {"id": 5, "address": "192.0.2.5", "port": 0, "interface": "",
                         "flags": ["subflow", "fullmesh"]}  # fmt: skip
    assert json.loads(ok(bus, "mptcp", "endpoint", "add", "192.0.2.9", "--json")) == {"id": 7}

    ok(bus, "mptcp", "endpoint", "change", "id", "5", "backup")  # fullmesh stays
    assert "192.0.2.5 id 5 subflow backup fullmesh \n" in ns.ip("mptcp", "endpoint").stdout
    ok(bus, "mptcp", "endpoint", "change", "id", "5", "nofullmesh")
    assert "192.0.2.5 id 5 subflow backup \n" in ns.ip("mptcp", "endpoint").stdout

    ok(bus, "mptcp", "endpoint", "delete", "id", "5")
    ok(bus, "mptcp", "endpoint", "delete", "198.51.100.7")
    assert ns.ip("mptcp", "endpoint", "show").stdout == "192.0.2.9 id 7 \n"
    ok(bus, "mptcp", "endpoint", "flush")
    assert ns.ip("mptcp", "endpoint", "show").stdout == ""
    assert json.loads(ok(bus, "--json", "mptcp", "endpoint", "show")) == []


def test_runtime_is_not_persisted(daemon: Daemon, ns: Netns, bus: PrivateBus) -> None:
    ok(bus, "mptcp", "endpoint", "add", "192.0.2.5", "subflow")
    ok(bus, "mptcp", "endpoint", "add", "192.0.2.6", "signal", "--runtime")
    ok(bus, "mptcp", "limits", "set", "subflow", "4", "--runtime")
    assert ns.ip("mptcp", "endpoint").stdout == "192.0.2.5 id 1 subflow \n192.0.2.6 id 2 signal \n"
    assert ns.ip("mptcp", "limits").stdout.strip() == "add_addr_accepted 0 subflows 4"
    persisted = (daemon.state_dir / "mptcp.conf").read_text()
    assert '[endpoint "192.0.2.5"]' in persisted
    assert "192.0.2.6" not in persisted
    assert "subflows" not in persisted


def test_limits_and_enabled(daemon: Daemon, ns: Netns, bus: PrivateBus) -> None:
    assert ok(bus, "mptcp", "limits", "show") == "add_addr_accepted 0 subflows 2\n"
    ok(bus, "mptcp", "limits", "set", "subflow", "1", "add_addr_accepted", "1")
    ok(bus, "mptcp", "limits", "set", "add_addr_accepted", "3")  # subflow stays 1
    assert ns.ip("mptcp", "limits").stdout.strip() == "add_addr_accepted 3 subflows 1"
    for argv in (["--json", "mptcp", "limits"], ["mptcp", "limits", "--json"],
                 ["mptcp", "limits", "show", "--json"]):  # fmt: skip
        assert json.loads(ok(bus, *argv)) == {"subflows": 1, "add_addr_accepted": 3}

    assert ok(bus, "mptcp", "enabled") == "yes\n"
    ok(bus, "mptcp", "disable")
    assert ns.exec("sysctl", "-n", "net.mptcp.enabled").stdout.strip() == "0"
    assert json.loads(ok(bus, "--json", "mptcp", "enabled")) == {"enabled": False}
    ok(bus, "mptcp", "enabled", "yes", "--runtime")
    assert ns.exec("sysctl", "-n", "net.mptcp.enabled").stdout.strip() == "1"
    persisted = (daemon.state_dir / "mptcp.conf").read_text()
    assert "enabled = no" in persisted
    assert "subflows = 1" in persisted


@pytest.mark.parametrize(
    "case",
    [
        (("endpoint", "add", "192.0.2.1", "subflow"), 5, "192.0.2.1 already exists"),
        (("endpoint", "add", "192.0.2.2", "turbo"), 2, "unknown endpoint flag 'turbo'"),
        (("endpoint", "add", "192.0.2.2", "signal", "fullmesh"), 2, "cannot be combined"),
        (("endpoint", "add", "192.0.2.2", "dev", "nosuch0"), 3, "nosuch0"),
        (("endpoint", "add", "192.0.2.2", "id", "256"), 2, "256"),
        (("endpoint", "add", "192.0.2.2", "id", "abc"), 2, "'abc' is not a number"),
        (("endpoint", "add", "192.0.2.2", "port", "70000", "signal"), 2, "port 70000"),
        (("endpoint", "add", "not-an-ip"), 2, "invalid IP address 'not-an-ip'"),
        (("endpoint", "delete", "id", "99"), 3, "no MPTCP endpoint with id 99"),
        (("endpoint", "delete", "203.0.113.99"), 3, "no MPTCP endpoint with address 203.0.113.99"),
        (("endpoint", "change", "id", "1", "signal"), 2, "unknown word 'signal'"),
        (("limits", "set", "subflow", "9"), 2, "limit subflows 9 outside 0..8"),
        (("limits", "set", "subflow", "-1"), 2, "limit subflows -1 outside 0..8"),
        (("endpoint", "add", "192.0.2.2", "id", "-1"), 2, "endpoint id -1 outside 0..255"),
        (("endpoint", "delete", "id", "0"), 2, "endpoint id 0 outside 1..255"),
        (("endpoint", "shw"), 2, "did you mean 'show'?"),
        (("limts",), 2, "did you mean 'limits'?"),
    ],
    ids=lambda case: " ".join(case[0]),
)
def test_errors_have_exit_codes(
    daemon: Daemon, ns: Netns, bus: PrivateBus, case: tuple[tuple[str, ...], int, str]
) -> None:
    argv, code, message = case
    ok(bus, "mptcp", "endpoint", "add", "192.0.2.1", "id", "1", "subflow")
    before = ns.ip("mptcp", "endpoint", "show").stdout
    result = netpathctl(bus.address, "mptcp", *argv)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert ns.ip("mptcp", "endpoint", "show").stdout == before


def test_duplicate_endpoint_says_so_without_the_errno(
    daemon: Daemon, ns: Netns, bus: PrivateBus
) -> None:
    ok(bus, "mptcp", "endpoint", "add", "192.0.2.1", "id", "1", "subflow")
    address = netpathctl(bus.address, "mptcp", "endpoint", "add", "192.0.2.1", "signal")
    assert (address.returncode, address.stderr) == (
        5, "netpathctl: MPTCP endpoint address 192.0.2.1 already exists (id 1)\n",
    )  # fmt: skip
    ns.ip("mptcp", "endpoint", "add", "192.0.2.4", "id", "4")  # someone else's
    same_id = netpathctl(bus.address, "mptcp", "endpoint", "add", "192.0.2.3", "id", "4")
    assert (same_id.returncode, same_id.stderr) == (
        5, "netpathctl: MPTCP endpoint id 4 is already in use by 192.0.2.4\n",
    )  # fmt: skip


def test_verbs_abbreviate_as_in_ip(daemon: Daemon, ns: Netns, bus: PrivateBus) -> None:
    ok(bus, "mptcp", "e", "a", "192.0.2.5", "i", "5", "subflow")
    ok(bus, "mptcp", "limit", "set", "subflow", "3")
    assert ok(bus, "mptcp", "endpoint", "sh") == "192.0.2.5 id 5 subflow\n"
    assert ok(bus, "mptcp", "limit") == "add_addr_accepted 0 subflows 3\n"
    assert ns.ip("mptcp", "endpoint").stdout == "192.0.2.5 id 5 subflow \n"


def test_no_daemon_exit_code(bus: PrivateBus) -> None:
    assert netpathctl(bus.address, "mptcp", "endpoint", "show").returncode == 69


LOOPBACK_CONNECTION = """
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as client:
        client.connect(listener.getsockname())
        conn, _ = listener.accept()
        client.sendall(b"hello")
        conn.recv(5)
        conn.close()
"""


class Lines:
    """Lines of a pipe read with a timeout (a buffered file object would hide data from
    select(), so this reads the raw descriptor)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.fd], [], [], max(remaining, 0))
            assert readable, "no output in time"
            chunk = os.read(self.fd, 65536)
            assert chunk, "the process closed its output"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def test_show_and_monitor(daemon: Daemon, ns: Netns, bus: PrivateBus) -> None:
    assert ok(bus, "mptcp", "show") == ""
    assert json.loads(ok(bus, "--json", "mptcp", "show")) == []
    monitor = subprocess.Popen(
        [*NETPATHCTL, f"--bus-address={bus.address}", "--json", "mptcp", "monitor"],
        env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    assert monitor.stdout is not None
    assert monitor.stderr is not None
    try:
        assert "monitoring MPTCP events" in Lines(monitor.stderr.fileno()).read()
        ns.exec(sys.executable, "-c", LOOPBACK_CONNECTION)
        events = Lines(monitor.stdout.fileno())
        kinds: list[str] = []
        while "listener_closed" not in kinds:
            kinds.append(json.loads(events.read())["kind"])
        assert {"listener_created", "created", "established", "closed"} <= set(kinds)
    finally:
        monitor.send_signal(signal.SIGINT)
        _, stderr = monitor.communicate(timeout=10)
    assert monitor.returncode == 0, stderr
