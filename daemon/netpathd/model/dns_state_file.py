"""One persisted DNS connection per file, as NetworkManager keeps one keyfile per profile.

With every connection in one file, a change rewrote (and fsync'ed) all of them: 10,000
connections made each `SetConnection` write about a megabyte.  NetworkManager's keyfile
plugin keeps one file per profile (`/etc/NetworkManager/system-connections/NAME.nmconnection`,
`src/core/settings/plugins/keyfile/`), so a change writes one small file; netpathd does the
same under `--state-dir/dns-connections/`.  Each file is the `[connection "NAME"]` section of
the old single file plus its place in the creation order, which the single file gave by
position and which still breaks full priority ties.
"""

from __future__ import annotations

import dataclasses
import hashlib

from netpathd.errors import ConfigError
from netpathd.model.dns import DnsConnection
from netpathd.model.dns_settings import connection_section, parse_connection_section
from netpathd.model.keyfile import parse_int, parse_keyfile

CONNECTION_FILE_SUFFIX = ".conf"
CONNECTION_FILE_HEADER = (
    "# Managed by netpathd: one DNS connection set over D-Bus (org.netpathd1.Dns).\n"
    "# [order] created-seq places it among the others; it breaks full priority ties.\n"
)
SEQ_MIN, SEQ_MAX = -(2**63), 2**63 - 1
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_NAME_MAX = 200  # bytes of an escaped name; file systems allow 255 for the whole name


def connection_file_name(name: str) -> str:
    """The file of connection `name`: the name itself when it can be, else an escape.

    Letters, digits, `_`, `-` and inner dots stay; every other byte of its UTF-8 is `%XX`,
    so `/`, a leading dot and non-ASCII letters cannot escape the directory or hide.  A name
    whose escape is too long for a file name becomes `+` and its SHA-256: no escaped name
    starts with `+` (it is escaped), so the two kinds never meet.
    """
    escaped = "".join(
        chr(byte)
        if chr(byte) in _KEPT and not (index == 0 and byte == ord("."))
        else f"%{byte:02X}"
        for index, byte in enumerate(name.encode())
    )
    if len(escaped) > _NAME_MAX:
        escaped = "+" + hashlib.sha256(name.encode()).hexdigest()
    return escaped + CONNECTION_FILE_SUFFIX


def render_connection_file(conn: DnsConnection, seq: int) -> str:
    lines = [*connection_section(conn), "", "[order]", f"created-seq = {seq}"]
    return CONNECTION_FILE_HEADER + "\n".join(lines) + "\n"


def parse_connection_file(text: str, path: str) -> tuple[DnsConnection, int]:
    """The connection of one file and its place in the creation order (ConfigError if bad)."""
    conn: DnsConnection | None = None
    seq: int | None = None
    for section in parse_keyfile(text, path):
        if section.name == "connection" and section.argument is not None and conn is None:
            conn = parse_connection_section(section, path, created_seq=0)
        elif section.name == "order" and section.argument is None and seq is None:
            for entry in section.entries:
                if entry.key != "created-seq":
                    raise ConfigError(path, entry.line, f"{entry.key}: unknown key in [order]")
                seq = parse_int(entry, path, SEQ_MIN, SEQ_MAX)
        else:
            raise ConfigError(
                path, section.line, f"[{section.name}]: one [connection] and one [order] only"
            )
    if conn is None or seq is None:
        raise ConfigError(path, 1, 'needs a [connection "NAME"] and an [order] created-seq')
    return dataclasses.replace(conn, created_seq=seq), seq
