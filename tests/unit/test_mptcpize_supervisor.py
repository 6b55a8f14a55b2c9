"""The supervisor's answers when a seccomp ioctl is interrupted or finds the notification
answered already (kernel/seccomp.c), with the listener replaced by a scripted fake: each ioctl
either raises the errno it is given or succeeds."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from netpathd.ctl import mptcpize

NID = 0x1234


@dataclass
class FakeListener:
    """Stands in for fcntl.ioctl on the listener: `failures[request]` are raised in order."""

    failures: dict[int, list[int]] = field(default_factory=dict)
    calls: list[tuple[int, bytes]] = field(default_factory=list)

    def ioctl(self, _fd: int, request: int, arg: bytearray, _mutate: bool) -> int:
        self.calls.append((request, bytes(arg)))
        pending = self.failures.get(request, [])
        if pending:
            err = pending.pop(0)
            raise OSError(err, os.strerror(err))
        if request == mptcpize._NOTIF_RECV:
            arg[: mptcpize._NOTIF.size] = mptcpize._NOTIF.pack(
                NID, os.getpid(), 0, 41, 0, 0, socket.AF_INET, socket.SOCK_STREAM, 0, 0, 0, 0
            )
        return 7 if request == mptcpize._NOTIF_ADDFD else 0

    def requests(self) -> list[int]:
        return [request for request, _ in self.calls]

    def answers(self) -> list[tuple[int, int, int, int]]:
        return [
            mptcpize._RESP.unpack(arg)
            for request, arg in self.calls
            if request == mptcpize._NOTIF_SEND
        ]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeListener]:
    listener = FakeListener()
    monkeypatch.setattr(mptcpize.fcntl, "ioctl", listener.ioctl)
    yield listener


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Iterator[mptcpize.Supervisor]:
    """A supervisor whose MPTCP socket is any socket: the kernel's MPTCP is not under test."""
    made = mptcpize.Supervisor(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    monkeypatch.setattr(made, "_socket", lambda *_: socket.socketpair()[0])
    yield made
    made.close()


RECV, VALID, ADDFD, SEND = (
    mptcpize._NOTIF_RECV,
    mptcpize._NOTIF_ID_VALID,
    mptcpize._NOTIF_ADDFD,
    mptcpize._NOTIF_SEND,
)


def test_a_converted_socket_is_installed_then_answered_with_its_number(
    fake: FakeListener, supervisor: mptcpize.Supervisor
) -> None:
    supervisor.serve_one()
    assert fake.requests() == [RECV, VALID, ADDFD, SEND]
    addfd = mptcpize._ADDFD.unpack(fake.calls[2][1])
    assert addfd[0] == NID and addfd[1] == 0  # no SECCOMP_ADDFD_FLAG_SEND
    assert fake.answers() == [(NID, 7, 0, 0)]


def test_interrupted_ioctls_are_repeated(
    fake: FakeListener, supervisor: mptcpize.Supervisor
) -> None:
    fake.failures = {VALID: [errno.EINTR], ADDFD: [errno.EINTR], SEND: [errno.EINTR]}
    supervisor.serve_one()
    assert fake.requests() == [RECV, VALID, VALID, ADDFD, ADDFD, SEND, SEND]
    assert fake.answers()[-1] == (NID, 7, 0, 0)  # MPTCP, not plain TCP


def test_an_interrupted_receive_goes_back_to_poll(
    fake: FakeListener, supervisor: mptcpize.Supervisor
) -> None:
    fake.failures = {RECV: [errno.EINTR]}
    supervisor.serve_one()
    assert fake.requests() == [RECV]


@pytest.mark.parametrize("gone", [errno.EINPROGRESS, errno.ENOENT])
def test_an_answered_or_vanished_notification_is_left_alone(
    fake: FakeListener, supervisor: mptcpize.Supervisor, gone: int
) -> None:
    """EINPROGRESS: someone answered already; ENOENT: the caller died.  Neither may be
    answered again, and neither may stop the supervisor."""
    fake.failures = {ADDFD: [gone], SEND: [gone, gone]}
    supervisor.serve_one()
    assert fake.requests() == [RECV, VALID, ADDFD]


@pytest.mark.parametrize("gone", [errno.EINPROGRESS, errno.ENOENT])
def test_a_refused_answer_does_not_stop_the_supervisor(
    fake: FakeListener, supervisor: mptcpize.Supervisor, gone: int
) -> None:
    fake.failures = {SEND: [gone]}
    supervisor.serve_one()
    assert fake.requests() == [RECV, VALID, ADDFD, SEND]


def test_a_socket_that_cannot_be_installed_continues_the_native_call(
    fake: FakeListener, supervisor: mptcpize.Supervisor
) -> None:
    fake.failures = {ADDFD: [errno.EMFILE]}
    supervisor.serve_one()
    assert fake.answers() == [(NID, 0, 0, mptcpize._SECCOMP_USER_NOTIF_FLAG_CONTINUE)]
