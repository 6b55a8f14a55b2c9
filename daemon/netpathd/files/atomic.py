"""The only way netpathd writes a file: all of it or none of it.

Readers such as the glibc resolver open a file at any moment, so a file is never rewritten
in place: the new content goes to a temporary file in the same directory (rename() is atomic
only within one file system), is fsync()ed, renamed over the old one, and the directory is
fsync()ed so the rename itself survives a crash (systemd-resolved's `resolved-resolv-conf.c`
and NetworkManager's `g_file_set_contents()` do the same).  Unchanged content is not written
at all: a rewrite would wake every inotify watcher and change the mtime for nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from netpathd.errors import Failed

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644
_TEMP_SUFFIX = ".tmp"
# mkstemp's random part: 8 characters of tempfile._RandomNameSequence (CPython 3.11-3.13).
_TEMP_RANDOM = "[a-z0-9_]{8}"
_TEMP_ATTEMPTS = 100  # names tried before giving up (tempfile tries 10,000)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def _reason(error: OSError) -> str:
    """The errno text ("Permission denied"), which is what an admin can act on."""
    return error.strerror or str(error)


def _current(path: Path) -> tuple[bytes, int] | None:
    """The existing content and permission bits, or None when there is no regular file.

    Opened non-blocking: a FIFO in the file's place would otherwise stall the daemon
    until someone writes to it; the rename replaces it like anything else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as error:
        raise Failed(f"cannot read {path}: {_reason(error)}") from error
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read(), stat.S_IMODE(info.st_mode)
        except OSError as error:
            raise Failed(f"cannot read {path}: {_reason(error)}") from error


def write_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None, durable: bool = True
) -> bool:
    """Replace `path` with `data`; True when written, False when it already had that content.

    `mode` None keeps the mode of the file being replaced (0644 for a new file).  A symlink at
    `path` is replaced by a regular file: callers that mean to write through a symlink resolve
    it first (see resolv_conf.write_resolv_conf).  `durable=False` skips the two fsyncs for
    files the daemon regenerates at start anyway: readers still see the old or the new
    content, never a mix, but a power loss may lose the update (what a file on tmpfs does).
    """
    target = Path(path)
    current = _current(target) if not target.is_symlink() else None
    if current is not None:
        old_data, old_mode = current
        if old_data == data and (mode is None or mode == old_mode):
            return False
    replace_atomic(target, data, mode=mode, durable=durable)
    return True


def replace_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    durable: bool = True,
    make_directory: bool = False,
) -> None:
    """Replace `path` with `data`, whatever it holds; `write_atomic` without the compare.

    The only writer of a file knows what it wrote last, so it compares in memory and calls
    this only when the content changed: the old file is never read, and the temporary file
    is made with plain syscalls (`tempfile` costs as much as the write on tmpfs).  For the
    MPTCP records every endpoint call writes before its reply (issue 13: the read and
    `mkstemp` were a fifth of an `AddEndpointRuntime`).  `mode` None keeps the mode of the
    file replaced, 0644 for a new one or one that is not a regular file.  `make_directory`
    makes a missing directory (and its parents) and tries once more.
    """
    target = os.fspath(path)
    directory, name = os.path.split(target)
    directory = directory or "."
    if mode is None:
        mode = _mode_to_keep(target)
    temp: str | None = None
    try:
        try:
            fd, temp = _create_temporary(directory, name)
        except FileNotFoundError:
            if not make_directory:
                raise
            os.makedirs(directory, exist_ok=True)
            fd, temp = _create_temporary(directory, name)
        try:
            os.fchmod(fd, mode)  # exact mode, not filtered by the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        temp = None
        if durable:
            fsync_directory(Path(directory))
    except OSError as error:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise Failed(f"cannot write {target}: {_reason(error)}") from error


def _mode_to_keep(target: str) -> int:
    """The permission bits of the regular file at `target`, else 0644."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return DEFAULT_MODE
    except OSError as error:
        raise Failed(f"cannot write {target}: {_reason(error)}") from error
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else DEFAULT_MODE


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new file named as `write_atomic`'s temporaries are (`remove_stale_temporaries`)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_TEMP_ATTEMPTS):
        temp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}{_TEMP_SUFFIX}")
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no unused temporary name for {name}")


def write_new_files_durably(directory: Path, files: Sequence[tuple[Path, bytes]]) -> None:
    """Write many files of ``directory`` at once, each whole or absent after a power loss.

    ``write_atomic`` waits for the disk once per file; here every file is written and
    fsync'ed under its temporary name, then all are renamed into place and the directory
    is fsync'ed once, so the disk is waited for about twice in all.  Any file already at
    one of the names is replaced.
    """
    import tempfile  # noqa: PLC0415 - as in write_atomic

    temporaries: list[tuple[str, Path]] = []
    try:
        for target, data in files:
            fd, temp = tempfile.mkstemp(
                prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX, dir=directory
            )
            temporaries.append((temp, target))
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), DEFAULT_MODE)
                file.write(data)
        for temp, _ in temporaries:
            fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        while temporaries:
            temp, target = temporaries[0]
            os.replace(temp, target)
            temporaries.pop(0)
        fsync_directory(directory)
    except OSError as error:
        for temp, _ in temporaries:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise Failed(f"cannot write {directory}: {_reason(error)}") from error


def remove_durably(path: Path) -> bool:
    """Unlink `path` and fsync its directory; False when there was nothing to remove."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise Failed(f"cannot remove {path}: {_reason(error)}") from error
    try:
        fsync_directory(path.parent)
    except OSError as error:
        raise Failed(f"cannot remove {path}: {_reason(error)}") from error
    return True


def make_directory_durably(directory: Path) -> None:
    """Create `directory` (its parent exists) so that it survives a crash, as a file would."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(exist_ok=True)
        fsync_directory(directory.parent)
    except OSError as error:
        raise Failed(f"cannot create {directory}: {_reason(error)}") from error


def fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temporaries(*paths: Path) -> None:
    """Remove the temporary files a killed ``write_atomic`` of these paths left behind.

    Only regular files named exactly as ``write_atomic`` names them for that
    path (``.NAME.`` + mkstemp's 8 characters + ``.tmp``) are removed: the
    directory may be ``/etc`` or ``/run``, where everything else is someone
    else's.  Call it before the first write, when no write of ours is under way.
    """
    for path in paths:
        _remove_matching(path.parent, re.escape(path.name), path)


def remove_stale_temporaries_in(directory: Path, name_pattern: str) -> None:
    """The same for every file of `directory` whose name matches the regex `name_pattern`.

    One scan of the directory, however many files it holds.
    """
    _remove_matching(directory, name_pattern, directory)


def _remove_matching(directory: Path, name_pattern: str, what: Path) -> None:
    try:
        entries = [entry for entry in os.scandir(directory) if entry.name.endswith(_TEMP_SUFFIX)]
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("cannot look for temporary files in %s: %s", directory, _reason(error))
        return
    if not entries:
        return  # as at almost every start: no pattern to compile (60 us each, seven per start)
    pattern = re.compile(rf"\.(?:{name_pattern})\.{_TEMP_RANDOM}{re.escape(_TEMP_SUFFIX)}")
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("cannot remove %s: %s", entry.path, _reason(error))
            continue
        log.info("removed %s, left by an interrupted write of %s", entry.path, what)
