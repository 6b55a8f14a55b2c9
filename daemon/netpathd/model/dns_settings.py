"""nmcli-style DNS settings: validate `a{sv}` maps into DnsConnection values and back.

The keys and value rules are NetworkManager's (`src/libnm-core-impl/nm-setting-ip-config.c`,
`nm-setting-connection.c`), with two deliberate differences: NM silently drops DNS options it
does not know, netpathd refuses them; and every error names the key and the rule, because a
setting that is dropped without a word is the hardest kind of misconfiguration to find.

Connection names are 1-64 printable characters without `"` or `\\` and without surrounding
whitespace: short enough for a terminal column, and quotable in the keyfile without escapes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from netpathd.errors import ConfigError, InvalidArgument
from netpathd.model.addresses import unusable_address_problem
from netpathd.model.dns import (
    DnsConnection,
    DnsFamilyConfig,
    GlobalDnsPriority,
    NameServer,
    option_name,
)
from netpathd.model.hints import did_you_mean
from netpathd.model.ifname import interface_name_problem
from netpathd.model.keyfile import Entry, Section, parse_keyfile
from netpathd.model.links import Family

NAME_MAX = 64
PRIORITY_MIN = -2147483647  # NM refuses G_MININT32 (nm-setting-ip-config.c, dns-priority)
PRIORITY_MAX = 2147483647
# systemd-resolved's LINK_DNS_SERVERS_MAX and LINK_SEARCH_DOMAINS_MAX (resolved-link.h), per
# link and so per connection, both families together.  glibc reads only the first 3 servers
# (MAXNS) anyway, and a lookup that fails tries every search domain in turn.
MAX_SERVERS = 256
MAX_SEARCH_DOMAINS = 256

CONNECTION_TYPES: Final = frozenset(
    {
        # nmcli's names for NetworkManager's connection types (NM_SETTING_*_SETTING_NAME).
        "6lowpan", "adsl", "bluetooth", "bond", "bridge", "cdma", "dummy", "ethernet",
        "generic", "gsm", "hsr", "infiniband", "ip-tunnel", "loopback", "macsec", "macvlan",
        "olpc-mesh", "ovs-bridge", "ovs-interface", "ovs-port", "pppoe", "team", "tun",
        "veth", "vlan", "vpn", "vrf", "vxlan", "wifi", "wifi-p2p", "wireguard", "wpan",
    }
)  # fmt: skip

DNS_OPTIONS_FLAG: Final = frozenset(
    {
        # _nm_utils_dns_option_descs[] in nm-setting-ip-config.c, non-numeric entries.  NM's
        # internal "_no-add-edns0"/"_no-add-trust-ad" only steer its caching plugins, which
        # netpathd does not have, so they are not accepted.
        "debug", "rotate", "no-check-names", "edns0", "single-request",
        "single-request-reopen", "no-tld-query", "use-vc", "no-reload", "trust-ad", "no-aaaa",
    }
)  # fmt: skip
DNS_OPTIONS_NUMERIC: Final = frozenset({"ndots", "timeout", "attempts"})
DNS_OPTIONS_IPV6_ONLY: Final = frozenset({"inet6", "ip6-bytestring", "ip6-dotint", "no-ip6-dotint"})

SETTINGS_SIGNATURES: Final[Mapping[str, str]] = {
    "connection.interface-name": "s",
    "connection.type": "s",
    "ipv4.dns": "as",
    "ipv4.dns-search": "as",
    "ipv4.dns-options": "as",
    "ipv4.dns-priority": "i",
    "ipv6.dns": "as",
    "ipv6.dns-search": "as",
    "ipv6.dns-options": "as",
    "ipv6.dns-priority": "i",
}
"""Every key netpathd accepts, with its D-Bus signature."""

_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArgument("connection name: must be a string")
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidArgument(f"connection name {name!r}: must be 1-{NAME_MAX} characters")
    if not name.isprintable() or '"' in name or "\\" in name or name != name.strip():
        raise InvalidArgument(
            f"connection name {name!r}: must be printable, without quotes, backslashes "
            "or surrounding whitespace"
        )
    return name


def validate_priority(key: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{key}: must be an integer (i)")
    if value == PRIORITY_MIN - 1:
        raise InvalidArgument(
            f"{key}: -2147483648 is not allowed, the range is {PRIORITY_MIN}..{PRIORITY_MAX}"
        )
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidArgument(f"{key}: {value} is outside {PRIORITY_MIN}..{PRIORITY_MAX}")
    return value


def make_global_priority(ipv4: object, ipv6: object) -> GlobalDnsPriority:
    """Validate the (ii) GlobalDnsPriority property; 0 leaves that family unset."""
    return GlobalDnsPriority(
        validate_priority("ipv4.dns-priority", ipv4),
        validate_priority("ipv6.dns-priority", ipv6),
    )


def _interface_name(key: str, value: object) -> str:
    name = _string(key, value)
    if problem := interface_name_problem(name):
        raise InvalidArgument(f"{key}: {name!r} {problem}")
    return name


def _string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{key}: must be a string (s)")
    return value


def _strings(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key}: must be a list of strings (as)")
    return tuple(value)


def _connection_type(key: str, value: object) -> str:
    kind = _string(key, value)
    if kind not in CONNECTION_TYPES:
        known = ", ".join(sorted(CONNECTION_TYPES))
        hint = did_you_mean(kind, CONNECTION_TYPES)
        raise InvalidArgument(f"{key}: unknown connection type {kind!r} (known: {known}){hint}")
    return kind


def _server(key: str, text: str, family: Family, interface_name: str) -> NameServer:
    try:
        server = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{key}: {text!r} is not an IP address") from None
    if server.version != family.value:
        raise InvalidArgument(f"{key}: {text!r} is not an IPv{family.value} address")
    if isinstance(server, ipaddress.IPv6Address) and server.scope_id is not None:
        # The resolv.conf line always names the connection's own interface (see
        # dns.render_server), so a different scope would be silently rewritten: refuse it.
        if not server.is_link_local:
            raise InvalidArgument(f"{key}: {text!r}: only link-local servers take a %scope")
        if server.scope_id != interface_name:
            raise InvalidArgument(
                f"{key}: {text!r}: the scope must be the connection's interface {interface_name!r}"
            )
        server = ipaddress.IPv6Address(int(server))
    if problem := unusable_address_problem(server):
        raise InvalidArgument(f"{key}: {text!r} {problem}")
    return server


def _domain(key: str, text: str) -> str:
    """RFC 1123 host names; a leading '~' marks a routing-only domain, '~.' routes everything."""
    if text == "~.":
        return text
    name = text.removeprefix("~")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidArgument(
            f"{key}: {text!r} is not a domain name (RFC 1123 labels of 1-63 letters, digits "
            "and inner hyphens, at most 253 characters, optional leading '~')"
        )
    return text


def _options(key: str, value: object, family: Family) -> tuple[str, ...]:
    options = tuple(_option(key, text, family) for text in _strings(key, value))
    names = [option_name(option) for option in options]
    for name in names:
        if names.count(name) > 1:
            raise InvalidArgument(f"{key}: option {name!r} is given more than once")
    return options


def _option(key: str, text: str, family: Family) -> str:
    """NM's _nm_utils_dns_option_validate(): `name` or, for numeric options, `name:N`."""
    name, colon, number = text.partition(":")
    if name in DNS_OPTIONS_NUMERIC:
        if not colon or not number.isdecimal() or int(number) > PRIORITY_MAX:
            raise InvalidArgument(f"{key}: {text!r} needs a value, like {name}:2")
        return f"{name}:{int(number)}"
    if name in DNS_OPTIONS_IPV6_ONLY and family is Family.IPV4:
        raise InvalidArgument(f"{key}: {name!r} is only valid in ipv6.dns-options")
    if name in DNS_OPTIONS_FLAG | DNS_OPTIONS_IPV6_ONLY:
        if colon:
            raise InvalidArgument(f"{key}: {name!r} takes no value")
        return text
    raise InvalidArgument(f"{key}: unknown DNS option {name!r}")


def merge_settings(
    existing: DnsConnection | None,
    name: str,
    settings: Mapping[str, object],
    *,
    created_seq: int,
) -> DnsConnection:
    """Apply a partial update; keys not given keep their value.

    `created_seq` is used only for a new connection: an update keeps the creation order, as
    NM keeps a configuration's list position when it is re-added.
    """
    validate_name(name)
    for key in settings:
        if key not in SETTINGS_SIGNATURES:
            raise InvalidArgument(f"{key}: unknown setting")
    if existing is None:
        for key in ("connection.interface-name", "connection.type"):
            if key not in settings:
                raise InvalidArgument(f"{key}: required for a new connection")
        current = DnsConnection(name, interface_name="", type="", created_seq=created_seq)
    else:
        current = existing

    interface_name = current.interface_name
    if "connection.interface-name" in settings:
        key = "connection.interface-name"
        interface_name = _interface_name(key, settings[key])
    conn_type = current.type
    if "connection.type" in settings:
        conn_type = _connection_type("connection.type", settings["connection.type"])

    families = {
        family: _merge_family(current.family(family), family, interface_name, settings)
        for family in Family
    }
    _check_caps(families, settings)
    return dataclasses.replace(
        current,
        interface_name=interface_name,
        type=conn_type,
        ipv4=families[Family.IPV4],
        ipv6=families[Family.IPV6],
    )


def _merge_family(
    config: DnsFamilyConfig, family: Family, interface_name: str, settings: Mapping[str, object]
) -> DnsFamilyConfig:
    prefix = f"ipv{family.value}."
    servers, search, options, priority = (
        config.servers,
        config.search,
        config.options,
        config.priority,
    )
    if (key := prefix + "dns") in settings:
        servers = tuple(
            _server(key, text, family, interface_name) for text in _strings(key, settings[key])
        )
    if (key := prefix + "dns-search") in settings:
        search = tuple(_domain(key, text) for text in _strings(key, settings[key]))
    if (key := prefix + "dns-options") in settings:
        options = _options(key, settings[key], family)
    if (key := prefix + "dns-priority") in settings:
        priority = validate_priority(key, settings[key])
    return DnsFamilyConfig(servers, search, options, priority)


def _check_caps(families: Mapping[Family, DnsFamilyConfig], settings: Mapping[str, object]) -> None:
    for suffix, what, cap, count in (
        ("dns", "DNS servers", MAX_SERVERS, sum(len(c.servers) for c in families.values())),
        (
            "dns-search",
            "search domains",
            MAX_SEARCH_DOMAINS,
            sum(len(c.search) for c in families.values()),
        ),
    ):
        if count > cap:
            keys = [f"ipv{family.value}.{suffix}" for family in Family]
            given = next((key for key in reversed(keys) if key in settings), keys[0])
            raise InvalidArgument(
                f"{given}: at most {cap} {what} per connection "
                f"({' and '.join(keys)} together), got {count}"
            )


def to_settings(conn: DnsConnection) -> dict[str, object]:
    """Every key of the connection, as GetConnections() returns it (round-trips)."""
    settings: dict[str, object] = {
        "connection.interface-name": conn.interface_name,
        "connection.type": conn.type,
    }
    for family in Family:
        config = conn.family(family)
        prefix = f"ipv{family.value}."
        settings[prefix + "dns"] = [str(server) for server in config.servers]
        settings[prefix + "dns-search"] = list(config.search)
        settings[prefix + "dns-options"] = list(config.options)
        settings[prefix + "dns-priority"] = config.priority
    return settings


# The connections file: what SetConnection() persists in --state-dir, one section per
# connection in creation order, so the order survives a restart without storing counters.

FILE_HEADER = (
    "# Managed by netpathd: DNS connections set over D-Bus (org.netpathd1.Dns).\n"
    "# Sections are in creation order, which breaks full priority ties.\n"
)
_GLOBAL_KEYS = ("ipv4.dns-priority", "ipv6.dns-priority")
_IDENTITY_KEYS = ("connection.interface-name", "connection.type")


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """One layer's connections and global priorities: the admin's dns.conf or the state kept."""

    global_priority: GlobalDnsPriority = field(default_factory=GlobalDnsPriority)
    connections: tuple[DnsConnection, ...] = ()


@contextmanager
def _at(path: str, line: int) -> Iterator[None]:
    try:
        yield
    except InvalidArgument as error:
        raise ConfigError(path, line, error.message) from None


def _value(entry: Entry, path: str) -> object:
    signature = SETTINGS_SIGNATURES[entry.key]
    if signature == "as":
        return [item.strip() for item in entry.value.split(",")] if entry.value else []
    if signature == "i":
        try:
            return int(entry.value, 10)
        except ValueError:
            raise ConfigError(
                path, entry.line, f"{entry.key}: must be an integer, got {entry.value!r}"
            ) from None
    return entry.value


def _parse_global(section: Section, path: str) -> GlobalDnsPriority:
    values = dict.fromkeys(_GLOBAL_KEYS, 0)
    for entry in section.entries:
        if entry.key not in _GLOBAL_KEYS:
            raise ConfigError(path, entry.line, f"{entry.key}: unknown key in [dns]")
        with _at(path, entry.line):
            values[entry.key] = validate_priority(entry.key, _value(entry, path))
    return GlobalDnsPriority(*values.values())


def parse_connection_section(section: Section, path: str, created_seq: int) -> DnsConnection:
    """One `[connection "NAME"]` section; errors name the file and line (ConfigError)."""
    name = section.argument or ""
    with _at(path, section.line):
        validate_name(name)
    entries = {entry.key: entry for entry in section.entries}
    for entry in section.entries:
        if entry.key not in SETTINGS_SIGNATURES:
            raise ConfigError(path, entry.line, f"{entry.key}: unknown setting")
    for key in _IDENTITY_KEYS:
        if key not in entries:
            raise ConfigError(path, section.line, f"{key}: required in [connection {name!r}]")
    with _at(path, entries["connection.interface-name"].line):
        _interface_name("connection.interface-name", entries["connection.interface-name"].value)
    try:
        # Every key at once: a merge per key was 9 of them per connection, 180 µs, and
        # a start with 1,000 connection files spent 180 ms on it (issue 13).
        settings = {entry.key: _value(entry, path) for entry in section.entries}
        return merge_settings(None, name, settings, created_seq=created_seq)
    except (InvalidArgument, ConfigError):
        return _merged_entry_by_entry(section, path, name, created_seq)


def _merged_entry_by_entry(
    section: Section, path: str, name: str, created_seq: int
) -> DnsConnection:
    """The section applied one entry at a time, as updates are; raises naming the line at fault.

    Each key appears once (``parse_keyfile``) and the caps only grow as keys are added,
    so this refuses exactly what the merge of every key at once refuses.
    """
    entries = {entry.key: entry for entry in section.entries}
    with _at(path, entries["connection.type"].line):
        identity = {key: entries[key].value for key in _IDENTITY_KEYS}
        conn = merge_settings(None, name, identity, created_seq=created_seq)
    for entry in section.entries:
        if entry.key not in _IDENTITY_KEYS:
            with _at(path, entry.line):
                conn = merge_settings(
                    conn, name, {entry.key: _value(entry, path)}, created_seq=created_seq
                )
    return conn


def parse_connections_file(text: str, path: str) -> DnsConfig:
    """Read the connections file; errors name the file and line (ConfigError)."""
    global_priority: GlobalDnsPriority | None = None
    connections: list[DnsConnection] = []
    names: set[str] = set()
    for section in parse_keyfile(text, path):
        if section.name == "dns" and section.argument is None:
            if global_priority is not None:
                raise ConfigError(path, section.line, "[dns] is given twice")
            global_priority = _parse_global(section, path)
        elif section.name == "connection" and section.argument is not None:
            if section.argument in names:
                raise ConfigError(
                    path, section.line, f"connection {section.argument!r} is given twice"
                )
            names.add(section.argument)
            connections.append(parse_connection_section(section, path, len(connections)))
        else:
            raise ConfigError(path, section.line, f"unknown section [{section.name}]")
    return DnsConfig(global_priority or GlobalDnsPriority(), tuple(connections))


def render_connections_file(config: DnsConfig) -> str:
    """The file parse_connections_file() reads back to the same config (creation order kept)."""
    lines = [
        FILE_HEADER + "[dns]",
        f"ipv4.dns-priority = {config.global_priority.ipv4}",
        f"ipv6.dns-priority = {config.global_priority.ipv6}",
    ]
    for conn in sorted(config.connections, key=lambda c: (c.created_seq, c.name)):
        lines += ["", *connection_section(conn)]
    return "\n".join(lines) + "\n"


def connection_section(conn: DnsConnection) -> list[str]:
    """The lines of the connection's `[connection "NAME"]` section, every key given."""
    lines = [f'[connection "{conn.name}"]']
    for key, value in to_settings(conn).items():
        text = ", ".join(value) if isinstance(value, list) else str(value)
        lines.append(f"{key} = {text}".rstrip())
    return lines
