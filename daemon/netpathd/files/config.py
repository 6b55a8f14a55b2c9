"""Reads the admin-owned configuration directory; never writes to it.

``/etc`` is read-only for the daemon under ``ProtectSystem=strict``; what the
daemon persists on behalf of D-Bus callers lives in ``--state-dir`` instead.

Only regular files are read, and only up to ``MAX_CONFIG_BYTES``: the file is
opened non-blocking, so a FIFO (or a device) in its place is refused at once
instead of stalling the event loop until someone writes to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from netpathd.errors import ConfigError
from netpathd.model.settings import CONFIG_FILE_NAME, Settings, parse_settings

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Far above any real file (256 servers and 256 domains make about 20 KiB per connection)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "an unknown kind of file")


def read_config_text(path: Path) -> str | None:
    """A configuration file's text, None when it does not exist (defaults apply)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(str(path), 0, f"cannot read: {error.strerror}") from error
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(str(path), 0, f"not a regular file ({_kind(mode)})")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(str(path), 0, f"cannot read: {error.strerror}") from error
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), 0, f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), 0, f"cannot read: {error}") from error


def load_settings(config_dir: Path) -> Settings:
    """The settings of ``config_dir/netpathd.conf``; defaults when the file is absent."""
    path = config_dir / CONFIG_FILE_NAME
    text = read_config_text(path)
    return Settings() if text is None else parse_settings(text, str(path))
