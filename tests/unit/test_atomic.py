"""write_atomic and replace_atomic: all or nothing, mode kept; unchanged content skipped."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netpathd.errors import Failed
from netpathd.files.atomic import (
    remove_stale_temporaries,
    replace_atomic,
    write_atomic,
    write_new_files_durably,
)
from tests.support.fifo import fifo_at


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_0644_regardless_of_umask(tmp_path: Path) -> None:
    target = tmp_path / "resolv.conf"
    old = os.umask(0o077)
    try:
        assert write_atomic(target, b"nameserver 192.0.2.1\n") is True
    finally:
        os.umask(old)
    assert target.read_bytes() == b"nameserver 192.0.2.1\n"
    assert mode_of(target) == 0o644
    assert os.listdir(tmp_path) == ["resolv.conf"]


def test_unchanged_content_is_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"same\n")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    before = target.stat()
    assert write_atomic(target, b"same\n") is False
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, 1_000_000_000)


def test_changed_content_replaces_the_inode_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old\n")
    target.chmod(0o600)
    inode = target.stat().st_ino
    assert write_atomic(target, b"new\n") is True
    assert target.read_bytes() == b"new\n"
    assert mode_of(target) == 0o600
    assert target.stat().st_ino != inode


def test_explicit_mode_is_applied_even_when_content_is_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"x")
    target.chmod(0o600)
    assert write_atomic(target, b"x", mode=0o640) is True
    assert mode_of(target) == 0o640
    assert write_atomic(target, b"x", mode=0o640) is False


def test_missing_directory_raises_failed_naming_path_and_errno(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "f"
    with pytest.raises(Failed) as info:
        write_atomic(target, b"x")
    assert info.value.message == f"cannot write {target}: No such file or directory"


def test_fsync_failure_leaves_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(Failed) as info:
        write_atomic(target, b"new\n")
    assert info.value.message == f"cannot write {target}: Input/output error"
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["f"]


def test_rename_failure_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"

    def broken_replace(src: str, dst: object) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(Failed, match="Device or resource busy"):
        write_atomic(target, b"new\n")
    assert os.listdir(tmp_path) == []


def test_a_symlink_is_replaced_by_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to("real")
    assert write_atomic(link, b"x") is True
    assert not link.is_symlink()
    assert (tmp_path / "real").read_bytes() == b"x"


@pytest.mark.parametrize(("durable", "fsyncs"), [(True, 2), (False, 0)])
def test_durable_writes_fsync_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, fsyncs: int
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    assert write_atomic(tmp_path / "f", b"data", durable=durable) is True
    assert (tmp_path / "f").read_bytes() == b"data"
    assert len(calls) == fsyncs


def test_a_fifo_in_the_files_place_is_replaced_without_blocking(tmp_path: Path) -> None:
    target = tmp_path / "mptcp-applied.conf"
    with fifo_at(target):
        started = time.monotonic()
        assert write_atomic(target, b"[automatic]\n") is True
    assert time.monotonic() - started < 2
    assert stat.S_ISREG(target.stat().st_mode)
    assert target.read_bytes() == b"[automatic]\n"


class Killed(BaseException):
    """Stands for SIGKILL: nothing of write_atomic's clean-up runs."""


@pytest.mark.parametrize("write", [write_atomic, replace_atomic])
def test_what_a_killed_write_leaves_is_removed_and_nothing_else(
    write: Callable[[Path, bytes], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "dns.conf"

    def killed(*_: object) -> None:
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", killed)
        for _ in range(3):
            with pytest.raises(Killed):
                write(target, b"new\n")
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 3
    assert all(name.startswith(".dns.conf.") and name.endswith(".tmp") for name in left)
    others = [".dns.conf.tmp", ".dns.conf.ABCDEFGH.tmp", ".mptcp.conf.abcdefgh.tmp", "dns.conf"]
    for name in others:
        (tmp_path / name).write_bytes(b"keep\n")
    remove_stale_temporaries(target, tmp_path / "missing" / "resolv.conf")
    assert sorted(os.listdir(tmp_path)) == sorted(others)


def test_files_written_together_leave_no_temporary_when_one_cannot_be_placed(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.conf").mkdir()
    (tmp_path / "b.conf" / "inside").write_text("keeps b.conf a non-empty directory")
    with pytest.raises(Failed, match=str(tmp_path)):
        write_new_files_durably(
            tmp_path, [(tmp_path / "a.conf", b"a"), (tmp_path / "b.conf", b"b")]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf", "b.conf"]
    assert (tmp_path / "a.conf").read_bytes() == b"a"


# -- replace_atomic: for the only writer of a file, which knows the content changed --------


def test_replace_never_reads_the_old_file(tmp_path: Path) -> None:
    """A FIFO in the file's place would block any read: the write goes past it at once."""
    target = tmp_path / "mptcp-applied.conf"
    with fifo_at(target):
        started = time.monotonic()
        replace_atomic(target, b"[automatic]\n", durable=False)
    assert time.monotonic() - started < 2
    assert target.read_bytes() == b"[automatic]\n"
    assert stat.S_ISREG(target.stat().st_mode)


def test_replace_keeps_the_mode_and_gives_a_new_file_0644_regardless_of_umask(
    tmp_path: Path,
) -> None:
    kept, new = tmp_path / "kept", tmp_path / "new"
    kept.write_bytes(b"old\n")
    kept.chmod(0o600)
    old = os.umask(0o077)
    try:
        replace_atomic(kept, b"new\n")
        replace_atomic(new, b"new\n")
    finally:
        os.umask(old)
    assert (mode_of(kept), mode_of(new)) == (0o600, 0o644)
    assert kept.read_bytes() == new.read_bytes() == b"new\n"
    assert sorted(os.listdir(tmp_path)) == ["kept", "new"]


def test_replace_makes_the_missing_directory_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "run" / "netpathd" / "f"
    with pytest.raises(Failed, match=f"cannot write {target}: No such file or directory"):
        replace_atomic(target, b"x", durable=False)
    replace_atomic(target, b"x", durable=False, make_directory=True)
    assert target.read_bytes() == b"x"


@pytest.mark.parametrize(("durable", "synced"), [(True, ["file", "directory"]), (False, [])])
def test_replace_syncs_file_and_directory_only_when_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, synced: list[str]
) -> None:
    calls: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    replace_atomic(tmp_path / "f", b"data", durable=durable)
    assert (tmp_path / "f").read_bytes() == b"data"
    assert calls == synced


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_replace_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old\n")

    def broken(*_: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(Failed) as info:
        replace_atomic(target, b"new\n")
    assert info.value.message == f"cannot write {target}: Input/output error"
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["f"]
