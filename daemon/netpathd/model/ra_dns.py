"""DNS servers and search domains from IPv6 router advertisements (RFC 8106).

The kernel hands user-space the RA options it does not handle itself as
``RTM_NEWNDUSEROPT`` messages (``net/ipv6/ndisc.c``: ``ndisc_ra_useropt()`` for
``ND_OPT_RDNSS`` 25 and ``ND_OPT_DNSSL`` 31, among others).  This module parses
their bytes and keeps, per link, each server and domain with the moment it
expires; the adapter schedules one timer per expiry.

* Lifetimes are seconds from the RA's arrival; 0xffffffff is infinity, 0 withdraws
  the item at once (RFC 8106 5.1, 5.2).  Every RA refreshes what it lists.
* One RDNSS option carries one or more addresses (length 3, 5, 7 ...); one DNSSL
  option one or more names in DNS label encoding, padded with zero bytes.
* A malformed option is returned as a `Malformed` with the reason and skipped; the
  options after it are still read (each carries its own length).

Whether the items are used is `model.ra_policy`, read at every start; this module loads with
the first RA (`dns_ra`).
"""

from __future__ import annotations

import ipaddress
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

ND_OPT_RDNSS = 25
ND_OPT_DNSSL = 31
INFINITY = 0xFFFFFFFF
SOURCE = "ra"
TYPE = "generic"
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class Kind(Enum):
    SERVER = "server"
    DOMAIN = "domain"


@dataclass(frozen=True, slots=True)
class DnsOption:
    """One RDNSS or DNSSL option: its items and their lifetime in seconds."""

    kind: Kind
    items: tuple[str, ...]
    lifetime: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """An option that cannot be read, and why: skipped, the rest of the RA still is."""

    reason: str


def parse_options(data: bytes) -> Iterator[DnsOption | Malformed]:
    """The RDNSS and DNSSL options in ``data`` (other types are passed over)."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            yield Malformed(f"{len(data) - offset} stray bytes after the last option")
            return
        kind, units = data[offset], data[offset + 1]
        if units == 0:
            yield Malformed("an option of length 0 (the rest cannot be read)")
            return
        option = data[offset : offset + units * 8]
        offset += units * 8
        if len(option) < units * 8:
            yield Malformed(f"option type {kind} runs past the end of the message")
            return
        if kind == ND_OPT_RDNSS:
            yield _rdnss(option)
        elif kind == ND_OPT_DNSSL:
            yield _dnssl(option)


def _rdnss(option: bytes) -> DnsOption | Malformed:
    units = option[1]
    if units < 3 or units % 2 == 0:
        return Malformed(f"RDNSS option of length {units} (must be 3, 5, 7 ...)")
    (lifetime,) = struct.unpack_from("!I", option, 4)
    servers = []
    for start in range(8, len(option), 16):
        server = ipaddress.IPv6Address(option[start : start + 16])
        if server.is_multicast or server.is_unspecified or server.is_loopback:
            return Malformed(f"RDNSS option with the unusable address {server}")
        servers.append(str(server))
    return DnsOption(Kind.SERVER, tuple(servers), lifetime)


def _dnssl(option: bytes) -> DnsOption | Malformed:
    if option[1] < 2:
        return Malformed(f"DNSSL option of length {option[1]} (must be 2 or more)")
    (lifetime,) = struct.unpack_from("!I", option, 4)
    names: list[str] = []
    labels: list[str] = []
    data, offset = option[8:], 0
    while offset < len(data):
        size = data[offset]
        offset += 1
        if size == 0:
            if not labels:  # padding after the last name
                break
            names.append(".".join(labels))
            labels = []
            continue
        label = data[offset : offset + size]
        offset += size
        if size > 63 or len(label) < size:
            return Malformed(f"DNSSL option with a label of length {size}")
        text = label.decode("ascii", "replace").lower()
        if not _LABEL.fullmatch(text):
            return Malformed(f"DNSSL option with the label {label!r} (not a host name)")
        labels.append(text)
    if labels:
        return Malformed("DNSSL option with a name that does not end in a zero label")
    if not names or any(len(name) > 253 for name in names):
        return Malformed("DNSSL option without a usable domain name")
    return DnsOption(Kind.DOMAIN, tuple(names), lifetime)


Item = tuple[int, Kind, str]
"""(ifindex, kind, server or domain): what one timer expires."""


@dataclass(slots=True)
class RaDnsTable:
    """Per link, each item with its expiry (monotonic seconds; inf: never), in RA order."""

    links: dict[int, dict[Item, float]] = field(default_factory=dict)

    def learn(self, ifindex: int, option: DnsOption, now: float) -> list[tuple[Item, float | None]]:
        """Refresh from one option; the changed deadlines (None: the item is gone)."""
        items = self.links.setdefault(ifindex, {})
        changes: list[tuple[Item, float | None]] = []
        for value in option.items:
            item = (ifindex, option.kind, value)
            if option.lifetime == 0:
                if items.pop(item, None) is not None:
                    changes.append((item, None))
                continue
            deadline = math.inf if option.lifetime == INFINITY else now + option.lifetime
            items[item] = deadline
            changes.append((item, deadline))
        if not items:
            del self.links[ifindex]
        return changes

    def expire(self, item: Item) -> bool:
        items = self.links.get(item[0], {})
        if items.pop(item, None) is None:
            return False
        if not items:
            del self.links[item[0]]
        return True

    def forget(self, ifindex: int) -> list[Item]:
        return list(self.links.pop(ifindex, {}))

    def values(self, ifindex: int, kind: Kind) -> list[str]:
        return [item[2] for item in self.links.get(ifindex, {}) if item[1] is kind]


def connection_settings(
    interface_name: str, servers: list[str], domains: list[str]
) -> dict[str, object]:
    """The runtime connection ``ra:IFNAME``: IPv6 servers and search domains of the link."""
    return {
        "connection.interface-name": interface_name,
        "connection.type": TYPE,
        "ipv6.dns": servers,
        "ipv6.dns-search": domains,
    }
