"""A record that changes by appending it whole: one ``write()`` per change, not a rename.

The applied record (``files/mptcp_store.py``) is written ahead of every endpoint netpathd
asks the kernel for, so it sits on the path of every ``AddEndpointRuntime`` and every
automatic endpoint.  An atomic replace there is six syscalls (stat, create, chmod, write,
close, rename); appending the new record to a file kept open is one, and was about 40 µs
of a 0.5 ms ``AddEndpointRuntime`` (issue 13).

What a reader sees is still all of one record or all of the one before: every record
ends with ``END_LINE``, and the content of the file is its last complete record.  A
daemon killed inside the write leaves a tail without that line, which is ignored: the
write had not returned, so the step it was written ahead of never ran.  Appends only
ever follow a complete record: the file is opened for appending right after an atomic
replace that leaves one record in it (at the first write after a start, when it outgrows
``COMPACT_ABOVE``, and after any failed write), so a torn tail is never followed by more.

The file lives on tmpfs and describes the kernel, which a power loss empties as well, so
no write needs fsync.  netpathd must be the only writer: a file replaced behind its back
is not written again until the next compaction.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from netpathd.errors import Failed
from netpathd.files.atomic import replace_atomic

log = logging.getLogger(__name__)

END_LINE = "# end of record\n"  # a comment: each record stays a valid file of its format
COMPACT_ABOVE = 64 * 1024  # bytes: a few hundred records of a few endpoints each


def last_record(text: str, path: Path) -> str:
    """The last complete record in ``text``, with as many newlines before it as lines
    precede it, so that a parser's line numbers are the file's.

    A file without any ``END_LINE`` is one record, as netpathd wrote it before records
    were appended (replaced atomically, no end line).
    """
    lines = text.splitlines(keepends=True)
    ends = [number for number, line in enumerate(lines) if line == END_LINE]
    if not ends:
        return text
    last = ends[-1]
    first = ends[-2] + 1 if len(ends) > 1 else 0
    if last + 1 < len(lines):
        log.warning(
            "%s: ignored an incomplete record after line %d (netpathd was stopped while "
            "writing it, before the step it was written for)",
            path,
            last + 1,
        )
    return "\n" * first + "".join(lines[first:last])


class RecordLog:
    """Writes records to ``path`` by appending; ``last_record`` reads them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None  # open for appending, after a compaction
        self._size = 0

    def write(self, text: str) -> None:
        """Make ``text`` (one record, without ``END_LINE``) the file's content; Failed if not."""
        data = (text + END_LINE).encode()
        if self._fd is None or self._size + len(data) > COMPACT_ABOVE:
            self._compact(data)
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:
            self.close()  # what was written may be torn: the next write replaces the file
            raise Failed(f"cannot write {self.path}: {error.strerror or error}") from error
        self._size += len(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _compact(self, data: bytes) -> None:
        self.close()
        replace_atomic(self.path, data, durable=False, make_directory=True)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as error:  # written, but not appendable: the next write compacts again
            log.warning("cannot open %s for appending: %s", self.path, error.strerror)
            return
        self._size = len(data)
