"""Reads the admin-owned configuration directory; never writes to it.

``/etc`` is read-only for the daemon under ``ProtectSystem=strict``; what the
daemon persists on behalf of D-Bus callers lives in ``--state-dir`` instead.
"""

from __future__ import annotations

from pathlib import Path

from netpathd.errors import ConfigError
from netpathd.model.settings import CONFIG_FILE_NAME, Settings, parse_settings


def read_config_text(path: Path) -> str | None:
    """A configuration file's text, None when it does not exist (defaults apply)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), 0, f"cannot read: {error}") from error


def load_settings(config_dir: Path) -> Settings:
    """The settings of ``config_dir/netpathd.conf``; defaults when the file is absent."""
    path = config_dir / CONFIG_FILE_NAME
    text = read_config_text(path)
    return Settings() if text is None else parse_settings(text, str(path))
