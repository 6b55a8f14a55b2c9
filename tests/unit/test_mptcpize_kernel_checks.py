"""What netpathctl run concludes from the kernel's version and from SET_FLAGS' answer."""

from __future__ import annotations

import errno
import os

import pytest

from netpathd.ctl import mptcpize


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.18.0-1-amd64", (6, 18)),
        ("5.4.0-150-generic", (5, 4)),
        ("5.10", (5, 10)),
        ("4.19.0+", (4, 19)),
        ("unknown", (99, 0)),
        ("6.", (99, 0)),
    ],
)
def test_kernel_release_version(release: str, version: tuple[int, int]) -> None:
    assert mptcpize._version(release) == version


@pytest.mark.parametrize("err", [errno.EINVAL, errno.ENOTTY])
def test_a_kernel_without_sync_wake_up_is_served_without_it(
    monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    def refuse(*_args: object) -> int:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(mptcpize.fcntl, "ioctl", refuse)
    mptcpize._wake_up_on_this_cpu(3)


def test_any_other_set_flags_failure_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(mptcpize.fcntl, "ioctl", refuse)
    with pytest.raises(OSError, match="Bad file descriptor"):
        mptcpize._wake_up_on_this_cpu(3)


def test_sync_wake_up_is_asked_for_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """SECCOMP_IOCTL_NOTIF_SET_FLAGS takes the flags as the ioctl argument, not a pointer
    (kernel/seccomp.c seccomp_notify_set_flags()); a pointer would be refused with EINVAL."""
    calls: list[tuple[object, ...]] = []

    def record(*args: object) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(mptcpize.fcntl, "ioctl", record)
    mptcpize._wake_up_on_this_cpu(3)
    assert calls == [(3, 0x40082104, mptcpize._SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)]
