"""The MPTCP configuration netpathd keeps: its file format, its layers and the apply plan.

One keyfile format serves three files, so an administrator can copy what
netpathd persisted into ``/etc`` unchanged (comments only on lines of their own)::

    [mptcp]
    # net.mptcp.enabled, then ip mptcp limits
    enabled = yes
    subflows = 2
    add_addr_accepted = 1

    # ip mptcp endpoint add 198.51.100.1 dev eth1 signal backup
    [endpoint "198.51.100.1"]
    flags = signal backup
    interface = eth1
    # with a port the kernel listens (signal only); id absent or 0: the kernel picks
    port = 0
    id = 0

* ``--config-dir/mptcp.conf``: the administrator's, never written by netpathd;
* ``--state-dir/mptcp.conf``: what D-Bus callers asked for, written by netpathd;
* ``--runtime-dir/mptcp-applied.conf``: endpoints netpathd put into the kernel
  beyond the state file, and what the kernel held before a runtime-only change,
  so that a restart can take runtime-only changes back.  Endpoints live in the
  namespace, not in the daemon, so without this record a runtime-only endpoint
  would outlive the restart that is supposed to drop it (NetworkManager keeps
  tombstones for the same reason: it removes only what it added).  Its
  ``[automatic]`` section lists the automatic endpoints netpathd added and the
  links where it loosened ``rp_filter``, for the same reason.

Only the administrator's file may hold the ``[auto ...]`` sections of the
automatic-endpoint policy (``netpathd.model.mptcp_auto_config``): the policy is
the admin's decision, so D-Bus callers never change it and netpathd never
writes it.

Endpoints are identified by address and port, as the kernel does when it refuses a
duplicate (``mptcp_pm_nl_append_new_local_addr``): ids are the kernel's choice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netpathd.errors import ConfigError, NetpathdError
from netpathd.model.ifname import interface_name_problem
from netpathd.model.keyfile import Entry, Section, parse_bool, parse_int, parse_keyfile
from netpathd.model.mptcp import (
    CHANGEABLE_FLAGS,
    MAX_ENDPOINT_ID,
    MAX_LIMIT,
    Endpoint,
    EndpointFlag,
    IPAddress,
    Limits,
    mixed_families_warning,
    parse_address,
    parse_flags,
    validate_endpoint,
)

if TYPE_CHECKING:  # the policy's module loads only for a file that has [auto] (parse_config)
    from netpathd.model.mptcp_auto_config import AutoPolicy

EndpointKey = tuple[IPAddress, int]

_MPTCP_KEYS = frozenset({"enabled", "subflows", "add_addr_accepted"})
_ENDPOINT_KEYS = frozenset({"flags", "interface", "port", "id"})
RECORD_SECTION = "automatic"
AUTO_SECTION = "auto"  # mptcp_auto_config.SECTION, without importing it
_RECORD_KEYS = frozenset({"endpoints", "rp-filter-loosened"})


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A wanted endpoint; ``id`` 0 lets the kernel choose, like ``ip mptcp endpoint add``."""

    address: IPAddress
    port: int = 0
    interface: str = ""
    id: int = 0
    flags: frozenset[EndpointFlag] = field(default_factory=frozenset)

    @property
    def key(self) -> EndpointKey:
        return (self.address, self.port)

    def to_endpoint(self) -> Endpoint:
        return Endpoint(
            id=self.id,
            address=self.address,
            port=self.port,
            interface=self.interface,
            flags=self.flags,
        )


@dataclass(frozen=True, slots=True)
class MptcpConfig:
    """One layer of configuration; None means "this layer does not say"."""

    enabled: bool | None = None
    subflows: int | None = None
    add_addr_accepted: int | None = None
    endpoints: tuple[EndpointConfig, ...] = ()
    # Only in the administrator's file; None: automatic endpoints are off.
    auto: AutoPolicy | None = None
    # Only in the applied record: what the automatic endpoints left in the kernel.
    auto_owned: frozenset[EndpointKey] = frozenset()
    rp_loosened: frozenset[str] = frozenset()

    def endpoint(self, key: EndpointKey) -> EndpointConfig | None:
        return next((e for e in self.endpoints if e.key == key), None)

    def with_endpoint(self, endpoint: EndpointConfig) -> MptcpConfig:
        """``endpoint`` added, or replacing the one with its address and port (order kept)."""
        if self.endpoint(endpoint.key) is None:
            return dataclasses.replace(self, endpoints=(*self.endpoints, endpoint))
        return dataclasses.replace(
            self,
            endpoints=tuple(endpoint if e.key == endpoint.key else e for e in self.endpoints),
        )

    def without_endpoint(self, key: EndpointKey) -> MptcpConfig:
        return dataclasses.replace(self, endpoints=tuple(e for e in self.endpoints if e.key != key))

    def with_limits(self, limits: Limits) -> MptcpConfig:
        return dataclasses.replace(
            self, subflows=limits.subflows, add_addr_accepted=limits.add_addr_accepted
        )


def merge(*layers: MptcpConfig) -> MptcpConfig:
    """Later layers win, per setting and per endpoint (address and port)."""
    result = MptcpConfig()
    for layer in layers:
        result = MptcpConfig(
            enabled=layer.enabled if layer.enabled is not None else result.enabled,
            subflows=layer.subflows if layer.subflows is not None else result.subflows,
            add_addr_accepted=(
                layer.add_addr_accepted
                if layer.add_addr_accepted is not None
                else result.add_addr_accepted
            ),
            endpoints=result.endpoints,
        )
        for endpoint in layer.endpoints:
            result = result.with_endpoint(endpoint)
    return result


def endpoint_config(endpoint: Endpoint) -> EndpointConfig:
    """What to remember of a kernel endpoint (its id only when the caller chose it)."""
    return EndpointConfig(
        address=endpoint.address,
        port=endpoint.port,
        interface=endpoint.interface,
        id=endpoint.id,
        flags=endpoint.flags - {EndpointFlag.IMPLICIT},
    )


# -- the file format -----------------------------------------------------------------


def parse_config(text: str, path: str, *, record: bool = False) -> MptcpConfig:
    """Parse a whole file; the first problem raises ConfigError naming file and line.

    ``record``: the applied record, which may hold ``[automatic]`` instead of
    ``[auto ...]`` sections (each refused in the other kind of file).
    """
    config = MptcpConfig()
    seen_ids: dict[int, int] = {}
    mptcp_line = 0
    sections = parse_keyfile(text, path)
    for section in sections:
        if section.name == AUTO_SECTION and not record:
            continue  # handed to parse_auto_policy below
        if section.name == RECORD_SECTION and section.argument is None and record:
            config = _parse_record(section, path, config)
        elif section.name == "mptcp" and section.argument is None:
            if mptcp_line:
                raise ConfigError(path, section.line, f"[mptcp] is already on line {mptcp_line}")
            mptcp_line = section.line
            config = _parse_mptcp(section, path, config)
        elif section.name == "endpoint" and section.argument is not None:
            endpoint = _parse_endpoint(section, path)
            if config.endpoint(endpoint.key) is not None:
                port = f" port {endpoint.port}" if endpoint.port else ""
                raise ConfigError(
                    path, section.line, f"endpoint {endpoint.address}{port} is defined twice"
                )
            if endpoint.id and endpoint.id in seen_ids:
                raise ConfigError(
                    path,
                    section.line,
                    f"endpoint id {endpoint.id} is already used on line {seen_ids[endpoint.id]}",
                )
            if endpoint.id:
                seen_ids[endpoint.id] = section.line
            config = config.with_endpoint(endpoint)
        else:
            header = section.name + (f' "{section.argument}"' if section.argument else "")
            expected = "[automatic]" if record else '[auto "IFNAME|PREFIX"]'
            raise ConfigError(
                path,
                section.line,
                f'unknown section [{header}] (expected [mptcp], [endpoint "ADDRESS"] '
                f"or {expected})",
            )
    if record or all(section.name != AUTO_SECTION for section in sections):
        return config  # no policy: automatic endpoints are off
    from netpathd.model.mptcp_auto_config import parse_auto_policy  # noqa: PLC0415

    return dataclasses.replace(config, auto=parse_auto_policy(sections, path))


def _parse_record(section: Section, path: str, config: MptcpConfig) -> MptcpConfig:
    _unknown_keys(section, _RECORD_KEYS, path)
    owned = set(config.auto_owned)
    loosened = set(config.rp_loosened)
    for entry in section.entries:
        words = entry.value.split()
        if entry.key == "endpoints":
            try:
                owned.update((parse_address(word), 0) for word in words)
            except NetpathdError as error:
                raise ConfigError(path, entry.line, error.message) from None
        else:
            loosened.update(words)
    return dataclasses.replace(config, auto_owned=frozenset(owned), rp_loosened=frozenset(loosened))


def _unknown_keys(section: Section, known: frozenset[str], path: str) -> None:
    for entry in section.entries:
        if entry.key not in known:
            raise ConfigError(
                path,
                entry.line,
                f"unknown key {entry.key!r} in [{section.name}] "
                f"(known: {', '.join(sorted(known))})",
            )


def _parse_mptcp(section: Section, path: str, config: MptcpConfig) -> MptcpConfig:
    _unknown_keys(section, _MPTCP_KEYS, path)
    values = {entry.key: entry for entry in section.entries}
    enabled, subflows, accepted = config.enabled, config.subflows, config.add_addr_accepted
    if "enabled" in values:
        enabled = parse_bool(values["enabled"], path)
    if "subflows" in values:
        subflows = parse_int(values["subflows"], path, 0, MAX_LIMIT)
    if "add_addr_accepted" in values:
        accepted = parse_int(values["add_addr_accepted"], path, 0, MAX_LIMIT)
    return dataclasses.replace(
        config, enabled=enabled, subflows=subflows, add_addr_accepted=accepted
    )


def _parse_endpoint(section: Section, path: str) -> EndpointConfig:
    _unknown_keys(section, _ENDPOINT_KEYS, path)
    values: dict[str, Entry] = {entry.key: entry for entry in section.entries}
    try:
        address = parse_address(section.argument or "")
    except NetpathdError as error:
        raise ConfigError(path, section.line, error.message) from None
    flags: frozenset[EndpointFlag] = frozenset()
    if "flags" in values:
        entry = values["flags"]
        try:
            flags = parse_flags(entry.value.replace(",", " ").split())
        except NetpathdError as error:
            raise ConfigError(path, entry.line, error.message) from None
    interface = values["interface"].value if "interface" in values else ""
    if interface and (problem := interface_name_problem(interface)):
        raise ConfigError(path, values["interface"].line, f"interface {interface!r} {problem}")
    port = parse_int(values["port"], path, 0, 65535) if "port" in values else 0
    endpoint_id = parse_int(values["id"], path, 0, MAX_ENDPOINT_ID) if "id" in values else 0
    endpoint = EndpointConfig(address, port, interface, endpoint_id, flags)
    try:
        validate_endpoint(endpoint.to_endpoint())
    except NetpathdError as error:
        raise ConfigError(path, section.line, error.message) from None
    return endpoint


def render_config(config: MptcpConfig, header: str) -> str:
    """The file for ``config``; ``parse_config(render_config(c))`` gives ``c`` back."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    scalars = []
    if config.enabled is not None:
        scalars.append(f"enabled = {'yes' if config.enabled else 'no'}")
    if config.subflows is not None:
        scalars.append(f"subflows = {config.subflows}")
    if config.add_addr_accepted is not None:
        scalars.append(f"add_addr_accepted = {config.add_addr_accepted}")
    if scalars:
        lines += ["", "[mptcp]", *scalars]
    for endpoint in config.endpoints:
        lines += ["", f'[endpoint "{endpoint.address}"]']
        if endpoint.flags:
            lines.append(f"flags = {' '.join(flag_names(endpoint.flags))}")
        if endpoint.interface:
            lines.append(f"interface = {endpoint.interface}")
        if endpoint.port:
            lines.append(f"port = {endpoint.port}")
        if endpoint.id:
            lines.append(f"id = {endpoint.id}")
    # The policy (``auto``) is never rendered: only the administrator writes it.
    if config.auto_owned or config.rp_loosened:
        lines += ["", f"[{RECORD_SECTION}]"]
        if config.auto_owned:
            owned = sorted(config.auto_owned, key=lambda key: (key[0].version, key[0].packed))
            lines.append(f"endpoints = {' '.join(str(address) for address, _ in owned)}")
        if config.rp_loosened:
            lines.append(f"rp-filter-loosened = {' '.join(sorted(config.rp_loosened))}")
    return "\n".join(lines) + "\n"


_FLAG_ORDER = tuple(EndpointFlag)


def flag_names(flags: Iterable[EndpointFlag]) -> list[str]:
    """Flag names in the order ``ip mptcp endpoint show`` prints them."""
    present = flags if isinstance(flags, frozenset) else frozenset(flags)
    return [flag.value for flag in _FLAG_ORDER if flag in present]


# -- the plan: desired against the kernel ----------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    """What to do to the kernel's endpoint table, in this order: remove, change, add."""

    remove: tuple[Endpoint, ...] = ()
    change_flags: tuple[tuple[int, frozenset[EndpointFlag]], ...] = ()
    add: tuple[EndpointConfig, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.change_flags or self.add)


def plan_endpoints(
    desired: Iterable[EndpointConfig],
    actual: Iterable[Endpoint],
    applied: Iterable[EndpointKey],
) -> EndpointPlan:
    """Make the kernel hold ``desired`` without duplicating or disturbing others.

    Matching is by address and port.  A matching endpoint whose backup/fullmesh
    differ is changed in place (SET_FLAGS); one whose other flags, interface or
    chosen id differ is removed and added again, as the kernel cannot change
    those.  Endpoints nobody asked for are removed only when netpathd itself put
    them there (``applied``): NetworkManager's endpoints and the kernel's implicit
    ones are left alone, as NetworkManager leaves others' alone.
    """
    by_key = {(e.address, e.port): e for e in actual}
    wanted = {e.key: e for e in desired}
    remove: list[Endpoint] = []
    change: list[tuple[int, frozenset[EndpointFlag]]] = []
    add: list[EndpointConfig] = []
    for key, endpoint in wanted.items():
        current = by_key.get(key)
        if current is None:
            add.append(endpoint)
            continue
        fixed_flags = current.flags - CHANGEABLE_FLAGS
        same_fixed = fixed_flags == endpoint.flags - CHANGEABLE_FLAGS
        same_place = current.interface == endpoint.interface and endpoint.id in (0, current.id)
        if not (same_fixed and same_place):
            remove.append(current)
            add.append(endpoint)
        elif current.flags & CHANGEABLE_FLAGS != endpoint.flags & CHANGEABLE_FLAGS:
            change.append((current.id, endpoint.flags & CHANGEABLE_FLAGS))
    for key in set(applied) - wanted.keys():
        stale = by_key.get(key)
        if stale is not None and EndpointFlag.IMPLICIT not in stale.flags:
            remove.append(stale)
    remove.sort(key=lambda e: e.id)
    return EndpointPlan(tuple(remove), tuple(change), tuple(add))


def scalar_targets(
    desired: MptcpConfig, restore: MptcpConfig, current: Limits
) -> tuple[bool | None, Limits]:
    """What an apply sets: the configured value, else the kernel's value from before a
    runtime-only change (``restore``), else what the kernel has (``None``: leave it)."""
    enabled = desired.enabled if desired.enabled is not None else restore.enabled
    return enabled, Limits(
        _first(desired.subflows, restore.subflows, current.subflows),
        _first(desired.add_addr_accepted, restore.add_addr_accepted, current.add_addr_accepted),
    )


def spend_restore(restore: MptcpConfig, runtime: MptcpConfig) -> MptcpConfig:
    """A restore value is kept only while a runtime-only change still covers that setting."""
    return dataclasses.replace(
        restore,
        enabled=restore.enabled if runtime.enabled is not None else None,
        subflows=restore.subflows if runtime.subflows is not None else None,
        add_addr_accepted=(
            restore.add_addr_accepted if runtime.add_addr_accepted is not None else None
        ),
    )


def first_mixed_families_warning(endpoints: Iterable[EndpointConfig]) -> str | None:
    """The Red Hat guide's advice (see ``mixed_families_warning``) for a whole configuration."""
    seen: list[Endpoint] = []
    for config in endpoints:
        endpoint = config.to_endpoint()
        if warning := mixed_families_warning(endpoint, seen):
            return warning
        seen.append(endpoint)
    return None


def _first(*values: int | None) -> int:
    return next(value for value in values if value is not None)
