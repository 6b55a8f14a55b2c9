"""Saving what D-Bus callers changed into ``--state-dir``.

A state file that could not be read at load time still holds the caller's
earlier changes: saving the in-memory view over it would throw them away, so
saving is refused until a reload reads the file again.
"""

from __future__ import annotations

from pathlib import Path

from netpathd.errors import ConfigError, Failed
from netpathd.files.atomic import write_atomic


def save_state(path: Path, text: str, unreadable: ConfigError | None) -> None:
    """Write ``text`` to ``path`` durably; ``unreadable`` is the error the last load hit."""
    if unreadable is not None:
        raise Failed(
            f"not saving over {path}, which could not be read ({unreadable.reason}): "
            "fix or remove it, then call Reload()"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
