"""The ``resolvconf`` language: a record key and resolv.conf text, made a DNS connection.

openresolv's resolvconf(8) and Debian's resolvconf(8) agree on the essentials: a record
is keyed ``IFACE[.PROTO]`` (``eth0.dhclient``), its text is resolv.conf(5) lines
(``nameserver``, ``search``, ``domain``, ``options``), ``-d`` removes it.  openresolv
adds ``-m METRIC`` (lower first), ``-x`` (this record's servers only) and ``-p``
(private: servers only for the record's own domains, and only with a local resolver).

Here a record becomes a runtime connection named ``resolvconf:KEY`` bound to the link
the key names, and the flags map onto dns-priority:

* ``-x`` is priority -1 in both families: a negative lowest priority keeps only the
  entries with exactly that priority, so every other connection at a higher value is
  left out, and exclusive records share the resolver file among themselves.
* ``-m METRIC`` orders entries among equal priority and rank (`DnsConnection.metric`,
  0 unless given, as openresolv's default metric is 0).
* ``-p`` turns the search domains into routing-only ``~domain`` entries.

A record on a tunnel is a VPN's: both tools put tunnels first (openresolv's
``dynamic_order`` begins with ``tap*``, ``tun*``, ``vpn*`` and ``wg*``, Debian's
``interface-order`` with ``tun*`` and ``tap*``), so such a record gets
NetworkManager's VPN priority and rank, by the kind of its link (`TUNNEL_TYPES`).

This module is pure: the CLI checks the text with it before talking to the daemon,
and the daemon parses it again, since any bus client may send text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from netpathd.errors import InvalidArgument
from netpathd.model.dns_settings import DNS_OPTIONS_IPV6_ONLY
from netpathd.model.dns_sources import RESOLVCONF_PREFIX

PREFIX = RESOLVCONF_PREFIX
SOURCE = "resolvconf"
TYPE = "generic"
TUNNEL_TYPES = {"wireguard": "wireguard", "tun": "vpn"}
"""The link's kind (IFLA_INFO_KIND) → the record's type.  A tun or tap link is where
OpenVPN, openconnect and vpnc put their tunnels, which NetworkManager runs as
connections of type ``vpn`` through its plugins."""
EXCLUSIVE_PRIORITY = -1
MAX_TEXT = 64 * 1024  # far above any real resolv.conf; a D-Bus caller is not trusted
MAX_LINE = 4096
KEY_MAX = 64 - len(PREFIX)  # the connection name's limit (dns_settings.NAME_MAX)
KEYWORDS = frozenset({"nameserver", "search", "domain", "options", "sortlist"})


@dataclass(frozen=True, slots=True)
class Flags:
    """``-m METRIC``, ``-x`` and ``-p``."""

    metric: int = 0
    exclusive: bool = False
    private: bool = False


@dataclass(frozen=True, slots=True)
class ResolvConfText:
    """What one record says, in the order given."""

    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def connection_name(key: str) -> str:
    return PREFIX + validate_key(key)


def validate_key(key: str) -> str:
    """Both tools use the key as a file name: one path component, printable, no spaces."""
    if not 1 <= len(key) <= KEY_MAX:
        raise InvalidArgument(f"resolvconf key {key!r}: must be 1-{KEY_MAX} characters")
    bad = not key.isprintable() or any(c in key for c in "/\\\"' \t") or key in {".", ".."}
    if bad or key.startswith(("-", ".")):
        raise InvalidArgument(
            f"resolvconf key {key!r}: must be printable, without spaces, quotes, slashes or "
            "backslashes, and not start with '-' or '.'"
        )
    return key


def parse_text(text: str) -> ResolvConfText:
    """resolv.conf(5) lines; anything else is an error naming its line.

    Unknown keywords are refused, not skipped: a domain broken by a newline would
    otherwise leave its first half silently in force.  ``sortlist`` is accepted and
    ignored, as NetworkManager ignores it.
    """
    if len(text) > MAX_TEXT:
        raise InvalidArgument(f"resolv.conf text: more than {MAX_TEXT} characters")
    ipv4: list[str] = []
    ipv6: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE:
            raise InvalidArgument(f"line {number}: longer than {MAX_LINE} characters")
        bad = next((c for c in line if not c.isprintable() and c not in "\t\r"), None)
        if bad is not None:
            raise InvalidArgument(f"line {number}: control character {bad!r}")
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        keyword, values = words[0], words[1:]
        if keyword not in KEYWORDS:
            raise InvalidArgument(f"line {number}: unknown keyword {keyword!r}")
        if not values:
            raise InvalidArgument(f"line {number}: {keyword} without a value")
        if keyword == "nameserver":
            server = _nameserver(number, values)
            (ipv6 if ":" in server else ipv4).append(server)
        elif keyword == "domain":  # glibc: the last of search/domain wins
            search = values[:1]
        elif keyword == "search":
            search = values
        elif keyword == "options":
            options.extend(values)
    return ResolvConfText(tuple(ipv4), tuple(ipv6), tuple(search), tuple(options))


def _nameserver(number: int, values: list[str]) -> str:
    if len(values) != 1:
        raise InvalidArgument(f"line {number}: nameserver takes one address")
    try:
        ipaddress.ip_address(values[0])
    except ValueError:
        problem = f"nameserver {values[0]!r} is not an address"
        raise InvalidArgument(f"line {number}: {problem}") from None
    return values[0]


def interface_of(key: str, link_exists: Callable[[str], bool]) -> str:
    """The link a key names.

    Debian's ``IFACE.PROTO`` and wg-quick's interface-order prefix (``tun.wg0`` for
    ``wg0`` when ``/etc/resolvconf/interface-order`` has ``tun*``) both put a dot in the
    key, and link names may hold dots too (``eth0.100``).  Existing links decide: the
    whole key, then the key without its first label (the prefix form), then without its
    last label (``IFACE.PROTO``, the longest such split first).  When no link matches,
    the ``IFACE.PROTO`` reading wins: it is what both tools document.
    """
    head, dot, tail = key.partition(".")
    candidates = [key]
    if dot:
        candidates.append(tail)
        labels = key.split(".")
        candidates += [".".join(labels[:cut]) for cut in range(len(labels) - 1, 0, -1)]
    for candidate in candidates:
        if link_exists(candidate):
            return candidate
    return head


def settings(
    text: ResolvConfText, interface: str, flags: Flags, link_kind: str = ""
) -> dict[str, object]:
    """The connection's nmcli-style settings (validated by `dns_settings.merge_settings`).

    ``link_kind``: the kind of the link ``interface`` names, "" when unknown.
    """
    search = [f"~{domain}" for domain in text.search] if flags.private else list(text.search)
    values: dict[str, object] = {
        "connection.interface-name": interface,
        "connection.type": TUNNEL_TYPES.get(link_kind, TYPE),
        "ipv4.dns": list(text.ipv4),
        "ipv6.dns": list(text.ipv6),
        # One list serves both families, as a record's search line does.
        "ipv4.dns-search": search,
        "ipv4.dns-options": [o for o in text.options if not _ipv6_only(o)],
        "ipv6.dns-options": [o for o in text.options if _ipv6_only(o)],
    }
    priority = EXCLUSIVE_PRIORITY if flags.exclusive else 0
    values["ipv4.dns-priority"] = priority
    values["ipv6.dns-priority"] = priority
    return values


def _ipv6_only(option: str) -> bool:
    return option.partition(":")[0] in DNS_OPTIONS_IPV6_ONLY
