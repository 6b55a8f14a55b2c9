"""Saving what D-Bus callers changed into ``--state-dir``.

A state file that could not be read at load time still holds the caller's
earlier changes: saving the in-memory view over it would throw them away, so
saving is refused until a reload reads the file again.

The DNS connections live one per file in ``--state-dir/dns-connections/``
(`model.dns_state_file` says why) and ``--state-dir/dns.conf`` keeps the
``[dns]`` defaults.  Earlier versions kept every connection in ``dns.conf``:
such a file is still read, and the first save moves its connections into
their own files before it writes anything else.  Each step is one atomic
write, connection files first, so a crash during the move leaves the same
connections on disk twice at worst, which reading takes as one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netpathd.errors import ConfigError, Failed
from netpathd.files.atomic import (
    make_directory_durably,
    remove_durably,
    remove_stale_temporaries,
    remove_stale_temporaries_in,
    replace_atomic,
    write_atomic,
    write_new_files_durably,
)
from netpathd.files.config import read_config_text
from netpathd.model.dns import DnsConnection, GlobalDnsPriority
from netpathd.model.dns_settings import DnsConfig, parse_connections_file, render_connections_file
from netpathd.model.dns_state_file import (
    CONNECTION_FILE_SUFFIX,
    connection_file_name,
    parse_connection_file,
    render_connection_file,
)

DNS_FILE_NAME = "dns.conf"
CONNECTIONS_DIR_NAME = "dns-connections"


@dataclass(frozen=True, slots=True)
class StoredDns:
    """What `DnsStateStore.read()` found; `adopt()` makes it what later saves build on."""

    global_priority: GlobalDnsPriority
    connections: tuple[tuple[DnsConnection, int], ...]  # with their places in creation order
    files: Mapping[str, Path] = field(default_factory=dict)  # connection name -> its file
    legacy: tuple[tuple[DnsConnection, int], ...] = ()  # still in dns.conf: not moved yet


def save_state(path: Path, text: str, unreadable: ConfigError | None) -> None:
    """Write ``text`` to ``path`` durably; ``unreadable`` is the error the last load hit.

    Always written: the caller, the file's only writer, skips what it saved already.
    """
    if unreadable is not None:
        raise Failed(
            f"not saving over {path}, which could not be read ({unreadable.reason}): "
            "fix or remove it, then call Reload()"
        )
    replace_atomic(path, text.encode(), make_directory=True)


class DnsStateStore:
    """The persisted DNS layer on disk: one small write per change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DNS_FILE_NAME
        self.directory = state_dir / CONNECTIONS_DIR_NAME
        self._unreadable: ConfigError | None = None
        self._files: dict[str, Path] = {}  # connection name -> the file it was read from
        self._legacy: list[
            tuple[DnsConnection, int]
        ] = []  # connections dns.conf still holds: not moved yet
        self._global = GlobalDnsPriority()

    def remove_stale_temporaries(self) -> None:
        remove_stale_temporaries(self.path)
        remove_stale_temporaries_in(self.directory, f".+{CONNECTION_FILE_SUFFIX}")

    def read(self) -> StoredDns:
        """Both places, all or nothing; a ConfigError also blocks saving until the next read."""
        try:
            stored = self._read()
        except ConfigError as error:
            self._unreadable = error
            raise
        self._unreadable = None
        return stored

    def adopt(self, stored: StoredDns) -> None:
        self._global, self._legacy, self._files = (
            stored.global_priority,
            list(stored.legacy),
            dict(stored.files),
        )

    def _read(self) -> StoredDns:
        text = read_config_text(self.path)
        config = DnsConfig() if text is None else parse_connections_file(text, str(self.path))
        legacy = tuple((conn, seq) for seq, conn in enumerate(config.connections))
        stored = {conn.name: (conn, seq) for conn, seq in legacy}
        files: dict[str, Path] = {}
        for path in self._connection_files():
            file_text = read_config_text(path)
            if file_text is None:
                continue  # removed meanwhile
            conn, seq = parse_connection_file(file_text, str(path))
            if conn.name in files:
                raise ConfigError(
                    str(path), 1, f"connection {conn.name!r} is also in {files[conn.name]}"
                )
            files[conn.name] = path
            stored[conn.name] = (conn, seq)  # over the same one in an old dns.conf
        ordered = sorted(stored.values(), key=lambda item: (item[1], item[0].name))
        return StoredDns(config.global_priority, tuple(ordered), files, legacy)

    def _connection_files(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ConfigError(str(self.directory), 0, f"cannot read: {error.strerror}") from error
        # A leading dot: a temporary file of an interrupted write (no connection file has one).
        return [
            self.directory / name
            for name in names
            if not name.startswith(".") and name.endswith(CONNECTION_FILE_SUFFIX)
        ]

    def save_connection(self, conn: DnsConnection, seq: int) -> None:
        self._writable()
        self._move_legacy()
        path = self._files.get(conn.name) or self.directory / connection_file_name(conn.name)
        write_atomic(path, render_connection_file(conn, seq).encode())
        self._files[conn.name] = path

    def remove_connection(self, name: str) -> None:
        self._writable()
        self._move_legacy()
        path = self._files.pop(name, None)
        if path is not None:
            remove_durably(path)

    def save_global_priority(self, priority: GlobalDnsPriority) -> None:
        self._writable()
        self._move_legacy()
        write_atomic(self.path, render_connections_file(DnsConfig(priority)).encode())
        self._global = priority

    def _writable(self) -> None:
        if self._unreadable is not None:
            raise Failed(
                f"not saving over {self._unreadable.path}, which could not be read "
                f"({self._unreadable.reason}): fix or remove it, then call Reload()"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        make_directory_durably(self.directory)

    def _move_legacy(self) -> None:
        """Give each connection of an old dns.conf its own file, then drop them from it.

        Once, and for every connection at once (``write_new_files_durably``: a
        write_atomic each would wait for the disk once per connection); only then is
        dns.conf rewritten.
        """
        if not self._legacy:
            return
        moved = {
            conn.name: (self.directory / connection_file_name(conn.name), seq, conn)
            for conn, seq in self._legacy
            if conn.name not in self._files
        }
        write_new_files_durably(
            self.directory,
            [
                (path, render_connection_file(conn, seq).encode())
                for path, seq, conn in moved.values()
            ],
        )
        self._files.update((name, path) for name, (path, _, _) in moved.items())
        write_atomic(self.path, render_connections_file(DnsConfig(self._global)).encode())
        self._legacy = []
