"""sd_notify as sd_notify(3) specifies it: one datagram to $NOTIFY_SOCKET, a path or abstract."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpathd import service_manager


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        yield sock, path


def test_the_assignments_arrive_as_one_datagram(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    service_manager.notify("READY=1", "STATUS=Serving org.netpathd1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=Serving org.netpathd1"


def test_an_abstract_socket_is_named_with_an_at_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"netpathd-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        service_manager.notify("STATUS=Reading links, addresses and routes")
        assert sock.recv(4096) == b"STATUS=Reading links, addresses and routes"


def test_without_a_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service_manager.notify("READY=1")  # outside systemd: no error, nothing to do


@pytest.mark.parametrize("address", ["/nonexistent/netpathd-notify", "relative/notify"])
def test_an_unreachable_socket_is_a_warning(
    address: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    with caplog.at_level(logging.WARNING, logger="netpathd.service_manager"):
        service_manager.notify("READY=1", "STATUS=x")
    assert [record.getMessage().split(": ")[0] for record in caplog.records] == [
        "sd_notify(READY=1, STATUS=x) failed"
    ]


def test_notify_loads_no_libsystemd(listener: tuple[socket.socket, str]) -> None:
    """systemd-python's notify is a C extension linked to libsystemd: about 1 ms of every start
    and its pages, for one sendto() that the socket module already has."""
    _, path = listener
    script = (
        "import sys\nfrom netpathd import service_manager\n"
        "service_manager.notify('READY=1')\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'systemd'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split("\n")[0] == "[]"
