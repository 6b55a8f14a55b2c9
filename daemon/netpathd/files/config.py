"""Reads the admin-owned configuration directory; never writes to it.

``/etc`` is read-only for the daemon under ``ProtectSystem=strict``; what the
daemon persists on behalf of D-Bus callers lives in ``--state-dir`` instead.
"""

from __future__ import annotations

from pathlib import Path

from netpathd.errors import ConfigError
from netpathd.model.settings import CONFIG_FILE_NAME, Settings, parse_settings


def load_settings(config_dir: Path) -> Settings:
    """The settings of ``config_dir/netpathd.conf``; defaults when the file is absent."""
    path = config_dir / CONFIG_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), 0, f"cannot read: {error}") from error
    return parse_settings(text, str(path))
