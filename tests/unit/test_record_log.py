"""The applied record's file: appended whole, read back as its last complete record."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from netpathd.errors import ConfigError, Failed
from netpathd.files import record_log
from netpathd.files.record_log import END_LINE, RecordLog, last_record
from netpathd.model.mptcp_config import parse_config

ONE = '[endpoint "192.0.2.1"]\n'
TWO = '[endpoint "192.0.2.2"]\n'


def written(path: Path, *records: str) -> RecordLog:
    log = RecordLog(path)
    for text in records:
        log.write(text)
    return log


def test_the_last_record_written_is_the_content(tmp_path: Path) -> None:
    path = tmp_path / "run" / "record"
    log = written(path, ONE, TWO)
    log.close()
    assert path.read_text() == ONE + END_LINE + TWO + END_LINE
    assert last_record(path.read_text(), path) == "\n" * 2 + TWO


def test_the_first_write_replaces_what_an_earlier_daemon_appended(tmp_path: Path) -> None:
    """After a start the file is one record again, in a new inode: appends follow only
    a record this process wrote whole."""
    path = tmp_path / "record"
    written(path, ONE, ONE).close()
    before = path.stat().st_ino
    log = written(path, TWO)
    log.close()
    assert path.read_text() == TWO + END_LINE
    assert path.stat().st_ino != before
    assert path.stat().st_mode & 0o777 == 0o644


def test_an_append_is_one_write_and_no_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = written(tmp_path / "record", ONE)
    calls: list[str] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        calls.append("write")
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", lambda *args, **kwargs: pytest.fail("opened a file"))
    monkeypatch.setattr(os, "write", counting_write)
    log.write(TWO)
    monkeypatch.undo()
    log.close()
    assert calls == ["write"]


def test_a_torn_tail_is_ignored_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A daemon killed inside the write: the step it was written ahead of never ran."""
    path = tmp_path / "record"
    path.write_text(ONE + END_LINE + TWO[:9])
    with caplog.at_level(logging.WARNING):
        assert last_record(path.read_text(), path) == ONE
    assert "ignored an incomplete record after line 2" in caplog.text


def test_a_record_without_an_end_line_is_read_whole(tmp_path: Path) -> None:
    """As netpathd wrote it before records were appended: replaced atomically, one record."""
    assert last_record(ONE, tmp_path / "record") == ONE
    assert last_record("", tmp_path / "record") == ""


def test_a_parse_error_names_the_files_line(tmp_path: Path) -> None:
    path = tmp_path / "record"
    path.write_text(ONE + END_LINE + "[endpoint]\nnot a line\n" + END_LINE)
    with pytest.raises(ConfigError) as raised:
        parse_config(last_record(path.read_text(), path), str(path), record=True)
    assert raised.value.line == 4  # ONE, END_LINE, "[endpoint]", then this line


def test_the_file_is_compacted_when_it_outgrows_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_log, "COMPACT_ABOVE", 3 * len(ONE + END_LINE))
    path = tmp_path / "record"
    log = written(path, ONE, ONE, ONE)
    assert path.read_text() == (ONE + END_LINE) * 3
    log.write(TWO)
    log.close()
    assert path.read_text() == TWO + END_LINE


def test_after_a_failed_write_the_next_one_replaces_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the failed write left may be torn: nothing is appended after it."""
    path = tmp_path / "record"
    log = written(path, ONE)
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        monkeypatch.setattr(os, "write", real_write)
        real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(Failed, match="No space left on device"):
        log.write(TWO)
    log.write(TWO)
    log.close()
    assert path.read_text() == TWO + END_LINE
