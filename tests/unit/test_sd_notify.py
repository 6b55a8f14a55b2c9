"""sd_notify without libsystemd: the datagram systemd reads (sd_notify(3)), where it listens."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpathd import service_manager


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_assignments_go_as_one_datagram_to_the_socket_path(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.getsockname())
    service_manager.notify("READY=1", "STATUS=Serving")
    assert listener.recv(4096) == b"READY=1\nSTATUS=Serving"


def test_an_at_sign_names_the_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"netpathd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        service_manager.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_a_missing_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    service_manager.notify("READY=1")
    assert "sd_notify(READY=1) failed" in caplog.text


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service_manager.notify("READY=1")  # no error, no socket
