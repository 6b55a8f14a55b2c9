"""Where MptcpStore keeps its files, and how many fsyncs a change costs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from netpathd.files.mptcp_store import APPLIED_FILE_NAME, CONFIG_FILE_NAME, MptcpStore
from netpathd.model.mptcp import parse_address
from netpathd.model.mptcp_config import EndpointConfig

KEY = (parse_address("192.0.2.9"), 0)
RECORD = '# an older netpathd\n\n[endpoint "192.0.2.9"]\n'


def store_in(tmp_path: Path) -> MptcpStore:
    store = MptcpStore(tmp_path / "config", tmp_path / "state", tmp_path / "run")
    store.load()
    return store


def test_the_applied_record_lives_in_the_runtime_dir(tmp_path: Path) -> None:
    """It describes the kernel, which a reboot empties: tmpfs, not the state dir."""
    store = store_in(tmp_path)
    store.own([KEY])
    assert '[endpoint "192.0.2.9"]' in (tmp_path / "run" / APPLIED_FILE_NAME).read_text()
    assert not (tmp_path / "state" / APPLIED_FILE_NAME).exists()


def test_a_record_an_older_version_left_in_the_state_dir_moves_to_the_runtime_dir(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / APPLIED_FILE_NAME).write_text(RECORD)
    store = store_in(tmp_path)
    assert store.applied.endpoint(KEY) is not None
    assert (tmp_path / "run" / APPLIED_FILE_NAME).read_text() == RECORD
    assert not (tmp_path / "state" / APPLIED_FILE_NAME).exists()


def test_an_old_record_never_replaces_the_runtime_one(tmp_path: Path) -> None:
    """Both there: a start was killed after copying, before removing the old one."""
    for folder, text in (("state", RECORD), ("run", "# newer\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / APPLIED_FILE_NAME).write_text(text)
    store = store_in(tmp_path)
    assert store.applied.endpoint(KEY) is None
    assert (tmp_path / "run" / APPLIED_FILE_NAME).read_text() == "# newer\n"
    assert not (tmp_path / "state" / APPLIED_FILE_NAME).exists()


def test_a_runtime_dir_that_is_the_state_dir_keeps_its_record(tmp_path: Path) -> None:
    """--runtime-dir given the state dir: the record is already where it belongs."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / APPLIED_FILE_NAME).write_text(RECORD)
    store = MptcpStore(tmp_path / "config", tmp_path / "state", tmp_path / "state" / ".")
    store.load()
    assert store.applied.endpoint(KEY) is not None
    assert (tmp_path / "state" / APPLIED_FILE_NAME).read_text() == RECORD


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ "file" or "directory" for every os.fsync, in order."""
    calls: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_a_runtime_change_writes_nothing_with_fsync(tmp_path: Path, fsyncs: list[str]) -> None:
    store = store_in(tmp_path)
    undo = store.record_add(EndpointConfig(*KEY), runtime=True)
    undo()
    store.capture("subflows", 2)
    assert fsyncs == []


def test_a_persisted_change_syncs_the_state_file_once(tmp_path: Path, fsyncs: list[str]) -> None:
    """One fsync of the data, one of the directory that makes the rename itself durable."""
    store = store_in(tmp_path)
    store.record_add(EndpointConfig(*KEY), runtime=False)
    assert fsyncs == ["file", "directory"]
    assert '[endpoint "192.0.2.9"]' in (tmp_path / "state" / CONFIG_FILE_NAME).read_text()


def test_the_same_persisted_configuration_is_not_written_again(tmp_path: Path) -> None:
    """Compared in memory (the store is the file's only writer): an idempotent call
    leaves the file, its inode and its mtime alone."""
    store = store_in(tmp_path)
    config = store.persisted.with_endpoint(EndpointConfig(*KEY))
    store.persist(config)
    path = tmp_path / "state" / CONFIG_FILE_NAME
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()
    store.persist(config)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, 1_000_000_000)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every file os.open opens."""
    names: list[str] = []
    real = os.open

    def recording(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        names.append(os.path.basename(path))
        return real(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording)
    return names


def test_an_endpoint_call_opens_only_the_files_it_writes(tmp_path: Path, opened: list[str]) -> None:
    """Both records are only written, never read back to compare: the store knows
    what it wrote (issue 13: the read cost a fifth of an AddEndpointRuntime).  The
    applied record is opened once for appending and then only written."""
    for folder in ("state", "run"):
        (tmp_path / folder).mkdir()
    store = store_in(tmp_path)
    store.own([(parse_address("192.0.2.8"), 0)])  # the first write after a start compacts
    opened.clear()
    store.record_add(EndpointConfig(*KEY), runtime=True)  # the applied record, on tmpfs
    store.record_add(EndpointConfig(parse_address("192.0.2.10"), 0), runtime=False)
    assert len(opened) == 2, opened  # the state file's temporary, its directory's fsync
    assert opened[0].startswith(f".{CONFIG_FILE_NAME}.") and opened[0].endswith(".tmp")
    assert opened[1] == "state"
    store.close()
    again = store_in(tmp_path)  # and a start reads back what was appended
    assert again.applied == store.applied
    again.close()
