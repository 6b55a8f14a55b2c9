"""Whether RA-learned DNS is used: ``[ra]`` and ``[ra "IFNAME"]`` of netpathd.conf.

Apart from `model.ra_dns`, which reads the router advertisements themselves: every start
reads this policy, while the parser and its table load with the first RA (`dns_ra`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from netpathd.errors import ConfigError
from netpathd.model.keyfile import Section, parse_bool

RA_KEYS = frozenset({"use-dns"})  # of [ra] and [ra "IFNAME"]


@dataclass(frozen=True, slots=True)
class RaPolicy:
    """``[ra] use-dns`` and ``[ra "IFNAME"] use-dns`` of netpathd.conf.

    NetworkManager uses RA-learned servers unless ``ipv6.ignore-auto-dns``: so here.
    """

    use_dns: bool = True
    links: Mapping[str, bool] = field(default_factory=dict)

    def uses_dns(self, interface_name: str) -> bool:
        return self.links.get(interface_name, self.use_dns)


def parse_ra_sections(sections: list[Section], path: str) -> RaPolicy:
    use_dns, links = True, dict[str, bool]()
    seen: dict[str | None, int] = {}
    for section in sections:
        if section.argument in seen:
            where = f"line {seen[section.argument]}"
            raise ConfigError(path, section.line, f"this [ra] section is already on {where}")
        seen[section.argument] = section.line
        for entry in section.entries:
            if entry.key not in RA_KEYS:
                raise ConfigError(path, entry.line, f"unknown key {entry.key!r} in [ra]")
            if section.argument is None:
                use_dns = parse_bool(entry, path)
            else:
                links[section.argument] = parse_bool(entry, path)
    return RaPolicy(use_dns, links)
