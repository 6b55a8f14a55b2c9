"""netpathd's own settings, read from ``netpathd.conf`` in ``--config-dir``.

Unknown sections and keys are refused by name rather than ignored: a typo in a
daemon's configuration that silently does nothing is the worst kind of bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netpathd.errors import ConfigError
from netpathd.model.keyfile import Section, parse_keyfile
from netpathd.model.ra_policy import RaPolicy, parse_ra_sections

LOG_LEVELS = ("debug", "info", "warning", "error")
RC_MANAGERS = ("symlink", "file", "unmanaged")  # NetworkManager's rc-manager values we support
DNS_MODES = ("default", "dnsmasq", "systemd-resolved", "none")  # NetworkManager's [main] dns
CONFIG_FILE_NAME = "netpathd.conf"


@dataclass(frozen=True, slots=True)
class Settings:
    """netpathd.conf, parsed; every field defaults to what an absent file means."""

    log_level: str = "info"
    # NetworkManager's default (its "auto" without resolvconf/netconfig): leave a symlinked
    # resolv.conf that points elsewhere (systemd-resolved's stub) alone.
    rc_manager: str = "symlink"
    dns: str = "default"
    ra: RaPolicy = field(default_factory=RaPolicy)  # [ra] and [ra "IFNAME"]


def _parse_main(section: Section, path: str) -> dict[str, str]:
    choices = {"log-level": LOG_LEVELS, "rc-manager": RC_MANAGERS, "dns": DNS_MODES}
    values: dict[str, str] = {}
    for entry in section.entries:
        allowed = choices.get(entry.key)
        if allowed is None:
            raise ConfigError(path, entry.line, f"unknown key {entry.key!r} in [main]")
        if entry.value not in allowed:
            raise ConfigError(
                path,
                entry.line,
                f"{entry.key} must be one of {', '.join(allowed)}, got {entry.value!r}",
            )
        values[entry.key.replace("-", "_")] = entry.value
    return values


def parse_settings(text: str, path: str) -> Settings:
    values: dict[str, str] = {}
    main_line = 0
    ra_sections: list[Section] = []
    for section in parse_keyfile(text, path):
        if section.name == "ra":
            ra_sections.append(section)
            continue
        if section.name != "main" or section.argument is not None:
            raise ConfigError(path, section.line, f"unknown section [{section.name}]")
        if main_line:
            raise ConfigError(path, section.line, f"[main] is already on line {main_line}")
        main_line = section.line
        values.update(_parse_main(section, path))
    return Settings(**values, ra=parse_ra_sections(ra_sections, path))
