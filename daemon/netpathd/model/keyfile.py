"""A small INI-style keyfile reader that remembers line numbers.

configparser cannot say on which line a semantically wrong value stands, and
admins need ``file:line: reason`` to fix a configuration (like systemd's
``config_parse()`` does).  Sections may carry a quoted argument, as in
``[endpoint "198.51.100.1"]``; repeated sections are kept in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netpathd.errors import ConfigError

_SECTION = re.compile(r'^\[\s*([A-Za-z0-9_.-]+)(?:\s+"([^"]*)")?\s*\]$')
_ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)\s*=\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key = value`` line, with its line number for the error that names it."""

    key: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Section:
    """``[name]`` or ``[name "argument"]`` and its entries, in file order."""

    name: str
    argument: str | None
    line: int
    entries: tuple[Entry, ...]

    def keys(self) -> set[str]:
        return {entry.key for entry in self.entries}


def parse_keyfile(text: str, path: str) -> list[Section]:
    """Split ``text`` into sections; a duplicate key in one section is an error."""
    sections: list[Section] = []
    current: tuple[str, str | None, int] | None = None
    entries: list[Entry] = []

    def close() -> None:
        if current is not None:
            sections.append(Section(current[0], current[1], current[2], tuple(entries)))

    for number, raw in enumerate(text.splitlines(), start=1):
        if "\0" in raw:
            # Even in a comment: no tool writes one, so the file is not what the admin thinks.
            raise ConfigError(path, number, "contains a NUL byte")
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                raise ConfigError(path, number, f"malformed section header {line!r}")
            close()
            current, entries = (match.group(1), match.group(2), number), []
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise ConfigError(path, number, f"expected 'key = value', got {line!r}")
        if current is None:
            raise ConfigError(path, number, f"{match.group(1)!r} is outside of any section")
        key = match.group(1)
        if any(entry.key == key for entry in entries):
            raise ConfigError(path, number, f"{key!r} is set twice in [{current[0]}]")
        entries.append(Entry(key, match.group(2).strip(), number))
    close()
    return sections


def parse_bool(entry: Entry, path: str) -> bool:
    """systemd's boolean spellings, so admins can write what they already know."""
    value = entry.value.lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ConfigError(path, entry.line, f"{entry.key} must be a boolean, got {entry.value!r}")


def parse_int(entry: Entry, path: str, low: int, high: int) -> int:
    try:
        value = int(entry.value, 10)
    except ValueError:
        raise ConfigError(
            path, entry.line, f"{entry.key} must be an integer, got {entry.value!r}"
        ) from None
    if not low <= value <= high:
        raise ConfigError(
            path, entry.line, f"{entry.key} must be between {low} and {high}, got {value}"
        )
    return value
