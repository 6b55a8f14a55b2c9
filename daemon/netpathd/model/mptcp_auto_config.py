"""The policy for automatic MPTCP endpoints, and its ``[auto ...]`` sections in mptcp.conf.

NetworkManager has one knob per connection, ``connection.mptcp-flags``
(``libnm-core-impl/nm-setting-connection.c``), applied to every address of the
device.  netpathd keeps NetworkManager's vocabulary and defaults but lets a
rule name an interface (or a glob), or an address prefix, because users ask for
per-address flags (a backup-only uplink inside a bigger interface).

Rules cascade key by key, most specific first: the longest matching prefix
rule, then the interface rule (an exact name before globs, globs in file
order), then ``[auto]``, then NetworkManager's built-in default
``enabled,subflow`` (``_NM_MPTCP_FLAGS_DEFAULT`` in
src/libnm-core-aux-intern/nm-libnm-core-utils.h).  A prefix rule that only says
``flags = backup`` therefore keeps the conditions set for its interface.

Another parser reads the whole file with :mod:`netpathd.model.keyfile` and
hands the ``auto`` sections to :func:`parse_auto_policy`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from netpathd.errors import ConfigError, InvalidArgument
from netpathd.model.keyfile import Entry, Section, parse_bool
from netpathd.model.mptcp import EndpointFlag

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SECTION = "auto"

AUTO_FLAGS = frozenset(
    {EndpointFlag.SUBFLOW, EndpointFlag.SIGNAL, EndpointFlag.BACKUP, EndpointFlag.FULLMESH}
)
"""The flags NetworkManager's ``mptcp-flags`` can put on automatic endpoints (before 1.56)."""

DISABLED: frozenset[EndpointFlag] = frozenset()
"""No flags: the rule turns automatic endpoints off (``mptcp-flags = disabled``)."""

_IFNAMSIZ = 16
_DOTTED_QUAD = re.compile(r"^[0-9]+(\.[0-9]+){3}$")


class LimitsMode(Enum):
    """Whether netpathd may raise the namespace's limits for its automatic endpoints.

    ``keep`` is NetworkManager's behaviour (it never sets limits) and the default.
    """

    KEEP = "keep"
    FOLLOW = "follow"


def check_auto_flags(flags: frozenset[EndpointFlag]) -> None:
    """Refuse what the kernel would refuse, before anything is planned.

    NetworkManager silently drops ``fullmesh`` next to ``signal``
    (``nm_mptcp_flags_normalize()``, src/libnm-core-aux-intern/nm-libnm-core-utils.c); the kernel
    refuses the pair on add, so netpathd refuses it in the configuration.
    """
    extra = flags - AUTO_FLAGS
    if extra:
        names = ", ".join(sorted(flag.value for flag in extra))
        raise InvalidArgument(f"flag {names} cannot be used for automatic endpoints")
    if {EndpointFlag.SIGNAL, EndpointFlag.FULLMESH} <= flags:
        raise InvalidArgument(
            "flags signal and fullmesh cannot be combined (the kernel refuses it)"
        )


@dataclass(frozen=True, slots=True)
class AutoRule:
    """One rule; ``None`` means "inherit from the less specific rule"."""

    flags: frozenset[EndpointFlag] | None = None  # DISABLED (empty) turns endpoints off
    also_without_default_route: bool | None = None
    also_without_sysctl: bool | None = None

    def __post_init__(self) -> None:
        if self.flags is not None:
            check_auto_flags(self.flags)


@dataclass(frozen=True, slots=True)
class ResolvedRule:
    """What applies to one address, and which rules said so (for logs and explain)."""

    flags: frozenset[EndpointFlag]
    also_without_default_route: bool
    also_without_sysctl: bool
    sources: tuple[str, ...]

    @property
    def enabled(self) -> bool:
        return bool(self.flags)


BUILTIN_RULE = AutoRule(
    flags=frozenset({EndpointFlag.SUBFLOW}),
    also_without_default_route=False,
    also_without_sysctl=False,
)
"""NetworkManager's default ``enabled,subflow``: both conditions apply."""


@dataclass(frozen=True, slots=True)
class AutoPolicy:
    default: AutoRule = AutoRule()
    interfaces: tuple[tuple[str, AutoRule], ...] = ()  # (name or glob, rule), in file order
    prefixes: tuple[tuple[IPNetwork, AutoRule], ...] = ()
    limits: LimitsMode = LimitsMode.KEEP
    _by_length: tuple[tuple[IPNetwork, AutoRule], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        ordered = sorted(self.prefixes, key=lambda item: -item[0].prefixlen)
        object.__setattr__(self, "_by_length", tuple(ordered))

    def interface_rule(self, ifname: str) -> tuple[str, AutoRule] | None:
        """An exact name beats a glob; among globs the first in the file wins (like systemd)."""
        for pattern, rule in self.interfaces:
            if pattern == ifname:
                return pattern, rule
        for pattern, rule in self.interfaces:
            if fnmatch.fnmatchcase(ifname, pattern):
                return pattern, rule
        return None

    def prefix_rule(self, address: IPAddress) -> tuple[IPNetwork, AutoRule] | None:
        """The longest prefix containing ``address`` (a /32 or /128 names one address)."""
        for network, rule in self._by_length:
            if network.version == address.version and address in network:
                return network, rule
        return None

    def rule_for(self, ifname: str, address: IPAddress) -> ResolvedRule:
        chain: list[tuple[str, AutoRule]] = []
        by_prefix = self.prefix_rule(address)
        if by_prefix is not None:
            chain.append((f'[auto "{by_prefix[0]}"]', by_prefix[1]))
        by_name = self.interface_rule(ifname)
        if by_name is not None:
            chain.append((f'[auto "{by_name[0]}"]', by_name[1]))
        chain.append(("[auto]", self.default))
        chain.append(("built-in default", BUILTIN_RULE))
        rules = [rule for _, rule in chain]
        flags_at, flags = _pick([rule.flags for rule in rules])
        route_at, without_route = _pick([rule.also_without_default_route for rule in rules])
        sysctl_at, without_sysctl = _pick([rule.also_without_sysctl for rule in rules])
        used = sorted({flags_at, route_at, sysctl_at})
        return ResolvedRule(
            flags=flags,
            also_without_default_route=without_route,
            also_without_sysctl=without_sysctl,
            sources=tuple(chain[index][0] for index in used),
        )


_V = TypeVar("_V")


def _pick(values: list[_V | None]) -> tuple[int, _V]:
    """The first value that is set, and where it stands in the chain."""
    for index, value in enumerate(values):
        if value is not None:
            return index, value
    raise AssertionError("BUILTIN_RULE sets every key")  # pragma: no cover


# --- mptcp.conf ------------------------------------------------------------------------------

_KEYS = ("flags", "also-without-default-route", "also-without-sysctl", "limits")


def parse_auto_policy(sections: Iterable[Section], path: str) -> AutoPolicy | None:
    """Build the policy from the ``[auto]`` / ``[auto "IFNAME|GLOB|PREFIX"]`` sections.

    ``None`` (automatic endpoints off) when there is no ``[auto]`` section.
    NetworkManager's default is on, but it owns every device it adds endpoints
    for; netpathd also serves hosts where NetworkManager (or mptcpd) manages
    the same table, and an admin who installs netpathd for its explicit
    endpoints must not find a second owner adding them.  So ``[auto]`` is the
    explicit opt-in, and a narrower section without it is refused rather than
    guessed at (does ``[auto "eth1"]`` alone mean "only eth1" or "eth1 too"?).

    Other sections are ignored: they belong to the parser that handed these over.
    Every mistake is a :class:`ConfigError` naming ``path:line``.
    """
    default: AutoRule | None = None
    default_line = 0
    limits = LimitsMode.KEEP
    interfaces: dict[str, tuple[AutoRule, int]] = {}
    prefixes: dict[IPNetwork, tuple[AutoRule, int]] = {}
    for section in sections:
        if section.name != SECTION:
            continue
        if section.argument is None:
            if default is not None:
                raise ConfigError(path, section.line, f"[auto] repeats line {default_line}")
            default, default_line = _parse_rule(section, path), section.line
            entry = _entry(section, "limits")
            if entry is not None:
                limits = _parse_limits(entry, path)
            continue
        if _entry(section, "limits") is not None:
            raise ConfigError(
                path,
                _line_of(section, "limits"),
                "limits apply to the whole namespace: set them in [auto]",
            )
        network = _parse_prefix(section.argument, section.line, path)
        if network is not None:
            if network in prefixes:
                raise ConfigError(
                    path, section.line, f'[auto "{network}"] repeats line {prefixes[network][1]}'
                )
            prefixes[network] = (_parse_rule(section, path), section.line)
        else:
            pattern = _check_ifname(section.argument, section.line, path)
            if pattern in interfaces:
                raise ConfigError(
                    path, section.line, f'[auto "{pattern}"] repeats line {interfaces[pattern][1]}'
                )
            interfaces[pattern] = (_parse_rule(section, path), section.line)
    if default is None:
        lines = [line for _, line in (*interfaces.values(), *prefixes.values())]
        if not lines:
            return None
        raise ConfigError(
            path,
            min(lines),
            "automatic endpoints are off without an [auto] section: add [auto] "
            "(with flags = disabled to have them only where a narrower section says so)",
        )
    return AutoPolicy(
        default=default,
        interfaces=tuple((name, rule) for name, (rule, _) in interfaces.items()),
        prefixes=tuple((net, rule) for net, (rule, _) in prefixes.items()),
        limits=limits,
    )


def _entry(section: Section, key: str) -> Entry | None:
    return next((entry for entry in section.entries if entry.key == key), None)


def _line_of(section: Section, key: str) -> int:
    entry = _entry(section, key)
    return entry.line if entry is not None else section.line


def _parse_rule(section: Section, path: str) -> AutoRule:
    header = f'[auto "{section.argument}"]' if section.argument is not None else "[auto]"
    for entry in section.entries:
        if entry.key not in _KEYS:
            raise ConfigError(
                path,
                entry.line,
                f"unknown key {entry.key!r} in {header} (known: {', '.join(_KEYS)})",
            )
    flags = _entry(section, "flags")
    without_route = _entry(section, "also-without-default-route")
    without_sysctl = _entry(section, "also-without-sysctl")
    return AutoRule(
        flags=None if flags is None else _parse_flags(flags, path),
        also_without_default_route=None
        if without_route is None
        else parse_bool(without_route, path),
        also_without_sysctl=None if without_sysctl is None else parse_bool(without_sysctl, path),
    )


def _parse_flags(entry: Entry, path: str) -> frozenset[EndpointFlag]:
    names = [name for name in re.split(r"[\s,]+", entry.value.lower()) if name]
    if not names:
        raise ConfigError(path, entry.line, "flags is empty (use 'disabled' to turn off)")
    if "disabled" in names:
        if len(names) > 1:
            raise ConfigError(path, entry.line, "'disabled' cannot be combined with other flags")
        return DISABLED
    known = ", ".join(["disabled", *sorted(flag.value for flag in AUTO_FLAGS)])
    flags = set()
    for name in names:
        try:
            flag = EndpointFlag(name)
        except ValueError:
            raise ConfigError(path, entry.line, f"unknown flag {name!r} (known: {known})") from None
        flags.add(flag)
    try:
        check_auto_flags(frozenset(flags))
    except InvalidArgument as error:
        raise ConfigError(path, entry.line, error.message) from None
    return frozenset(flags)


def _parse_limits(entry: Entry, path: str) -> LimitsMode:
    try:
        return LimitsMode(entry.value.lower())
    except ValueError:
        raise ConfigError(
            path, entry.line, f"limits must be follow or keep, got {entry.value!r}"
        ) from None


def _parse_prefix(argument: str, line: int, path: str) -> IPNetwork | None:
    """A prefix or address argument, or None when the argument names an interface.

    ``/`` and ``:`` never occur in interface names (``dev_valid_name()`` in
    net/core/dev.c), and a dotted quad is meant as an address.
    """
    if "/" not in argument and ":" not in argument and not _DOTTED_QUAD.match(argument):
        return None
    if "%" in argument:  # ip_network() takes fe80::1%e1 and it would never match an address
        raise ConfigError(
            path,
            line,
            f"invalid prefix {argument!r}: a prefix takes no %scope (use an interface section)",
        )
    try:
        return ipaddress.ip_network(argument, strict=True)
    except ValueError as error:
        reason = str(error)
        if "host bits set" in reason:
            loose = ipaddress.ip_network(argument, strict=False)
            reason = f"has host bits set (did you mean {loose}?)"
        raise ConfigError(path, line, f"invalid prefix {argument!r}: {reason}") from None


def _check_ifname(pattern: str, line: int, path: str) -> str:
    """The kernel's ``dev_valid_name()`` rules, applied to the name or glob."""
    if not pattern or pattern in (".", "..") or len(pattern) >= _IFNAMSIZ:
        raise ConfigError(
            path, line, f"invalid interface name {pattern!r} (1 to {_IFNAMSIZ - 1} characters)"
        )
    if any(char.isspace() for char in pattern):
        raise ConfigError(path, line, f"invalid interface name {pattern!r} (contains a space)")
    return pattern
