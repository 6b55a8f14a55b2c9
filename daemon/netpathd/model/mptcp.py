"""The rules of the kernel's in-kernel MPTCP path manager, as pure values and checks.

Endpoints and limits are per network namespace.  Every check here mirrors a
refusal of ``net/mptcp/pm_kernel.c`` / ``pm_netlink.c`` (kernel 6.18) so a bad
request is refused with a message naming the value and the rule *before* any
kernel state changes, and a D-Bus client sees the same wording whatever kernel
version happens to run.  The kernel stays the authority: its own refusals are
mapped by the adapter (``netpathd.kernel.mptcp_pm``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from netpathd.errors import AlreadyExists, InvalidArgument
from netpathd.model.addresses import unusable_address_problem
from netpathd.model.hints import did_you_mean
from netpathd.model.ifname import interface_name_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_LIMIT = 8
"""``MPTCP_PM_ADDR_MAX``: the ceiling for both limits ("limit greater than maximum (8)")."""

MAX_ENDPOINTS = 8
"""The kernel keeps at most ``MPTCP_PM_ADDR_MAX`` endpoints; the 9th gets ERANGE."""

MAX_ENDPOINT_ID = 255
"""``MPTCP_PM_MAX_ADDR_ID``; id 0 names the initial subflow, so on add it means "kernel picks"."""


class EndpointFlag(Enum):
    """``MPTCP_PM_ADDR_FLAG_*`` under the names ``ip mptcp endpoint`` prints."""

    SIGNAL = "signal"
    SUBFLOW = "subflow"
    BACKUP = "backup"
    FULLMESH = "fullmesh"
    IMPLICIT = "implicit"
    LAMINAR = "laminar"

    @property
    def bit(self) -> int:
        return _FLAG_BITS[self]


_FLAG_BITS = {
    EndpointFlag.SIGNAL: 1 << 0,
    EndpointFlag.SUBFLOW: 1 << 1,
    EndpointFlag.BACKUP: 1 << 2,
    EndpointFlag.FULLMESH: 1 << 3,
    # The kernel creates IMPLICIT entries itself for local addresses that a
    # subflow used without an endpoint; they are reported, never requested.
    EndpointFlag.IMPLICIT: 1 << 4,
    # Added in 6.18 (mptcp_pm_get_endp_laminar_max in this kernel's kallsyms).
    EndpointFlag.LAMINAR: 1 << 5,
}

CHANGEABLE_FLAGS = frozenset({EndpointFlag.BACKUP, EndpointFlag.FULLMESH})
"""What ``MPTCP_PM_CMD_SET_FLAGS`` changes: ``mptcp_pm_nl_set_flags`` masks everything else."""

REQUESTABLE_FLAGS = frozenset(EndpointFlag) - {EndpointFlag.IMPLICIT}


def flags_to_word(flags: Iterable[EndpointFlag]) -> int:
    word = 0
    for flag in flags:
        word |= flag.bit
    return word


_KNOWN_BITS = sum(_FLAG_BITS.values())
_FLAGS_BY_WORD = tuple(
    frozenset(flag for flag, bit in _FLAG_BITS.items() if word & bit)
    for word in range(_KNOWN_BITS + 1)
)  # every endpoint of every dump is decoded: one lookup instead of a walk of the enum


def flags_from_word(word: int) -> frozenset[EndpointFlag]:
    """Bits this code does not know are dropped: a newer kernel may add flags."""
    return _FLAGS_BY_WORD[word & _KNOWN_BITS]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One entry of the namespace's endpoint table (``ip mptcp endpoint show``)."""

    id: int
    address: IPAddress
    port: int = 0  # 0: no port; with a port the kernel listens on it (signal only)
    interface: str = ""  # "" : no device binding
    ifindex: int = 0
    flags: frozenset[EndpointFlag] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-namespace limits; a fresh namespace starts at subflows 2, add_addr_accepted 0."""

    subflows: int
    add_addr_accepted: int


def parse_flags(names: Iterable[str]) -> frozenset[EndpointFlag]:
    """Flag names as a client sends them (``["signal", "backup"]``) to flags."""
    flags = set()
    for name in names:
        try:
            flag = EndpointFlag(name)
        except ValueError:
            known = ", ".join(flag.value for flag in EndpointFlag if flag in REQUESTABLE_FLAGS)
            hint = did_you_mean(name, (known_flag.value for known_flag in REQUESTABLE_FLAGS))
            raise InvalidArgument(
                f"unknown endpoint flag {name!r} (known: {known}){hint}"
            ) from None
        if flag not in REQUESTABLE_FLAGS:
            raise InvalidArgument(f"endpoint flag {name!r} is set by the kernel, not requested")
        flags.add(flag)
    return frozenset(flags)


def parse_address(text: str) -> IPAddress:
    """An endpoint address; ``fe80::1%e1`` is refused: the kernel's endpoint has no scope
    field (pyroute2 fails on it deep inside with an OSError), the interface binds it."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid IP address {text!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise InvalidArgument(
            f"invalid IP address {text!r}: an endpoint takes no %scope "
            "(bind it to the interface instead)"
        )
    return address


def validate_endpoint_id(endpoint_id: int, *, allow_zero: bool) -> None:
    """Ids are u8; 0 is the initial subflow's id, only meaningful as "kernel chooses"."""
    low = 0 if allow_zero else 1
    if not low <= endpoint_id <= MAX_ENDPOINT_ID:
        raise InvalidArgument(
            f"endpoint id {endpoint_id} outside {low}..{MAX_ENDPOINT_ID}"
            + ("" if allow_zero else " (0 is the initial subflow, not an endpoint)")
        )


def validate_endpoint(endpoint: Endpoint) -> None:
    """The checks of ``mptcp_pm_nl_add_addr_doit`` before anything is applied, and the
    addresses and interface names the kernel would take but could never use."""
    validate_endpoint_id(endpoint.id, allow_zero=True)
    if problem := unusable_address_problem(endpoint.address):
        raise InvalidArgument(f"endpoint {endpoint.address} {problem}")
    if endpoint.interface and (problem := interface_name_problem(endpoint.interface)):
        raise InvalidArgument(f"interface {endpoint.interface!r} {problem}")
    if not endpoint.flags <= REQUESTABLE_FLAGS:
        raise InvalidArgument("endpoint flag 'implicit' is set by the kernel, not requested")
    if EndpointFlag.SIGNAL in endpoint.flags and EndpointFlag.FULLMESH in endpoint.flags:
        raise InvalidArgument("endpoint flags 'signal' and 'fullmesh' cannot be combined")
    validate_port(endpoint.port)
    if endpoint.port and (
        EndpointFlag.SIGNAL not in endpoint.flags or EndpointFlag.SUBFLOW in endpoint.flags
    ):
        # pm_kernel.c address_use_port(): "flags must have signal and not subflow when using port"
        raise InvalidArgument(f"port {endpoint.port} requires the 'signal' flag and not 'subflow'")


def validate_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"port {port} outside 0..65535")


def validate_limit(name: str, value: int) -> None:
    if not 0 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"limit {name} {value} outside 0..{MAX_LIMIT}")


def refuse_conflicts(new: Endpoint, table: Iterable[Endpoint]) -> None:
    """The kernel's EEXIST (same address and port), EBUSY (same id) and ERANGE, beforehand.

    netpathd writes an add down before asking the kernel (write-ahead, by
    address and port), so it refuses what the kernel would refuse first: a
    record naming someone else's address would make a daemon killed right after
    the kernel's refusal remove that endpoint at its next start.  An
    ``implicit`` endpoint with the address is no obstacle: the kernel replaces
    it (``mptcp_pm_nl_append_new_local_addr``).
    """
    table = list(table)
    replaces_implicit = False
    for endpoint in table:
        if (endpoint.address, endpoint.port) == (new.address, new.port):
            if EndpointFlag.IMPLICIT not in endpoint.flags:
                port = f" port {new.port}" if new.port else ""
                raise AlreadyExists(
                    f"MPTCP endpoint address {new.address}{port} already exists (id {endpoint.id})"
                )
            replaces_implicit = True
        elif new.id and endpoint.id == new.id:
            raise AlreadyExists(
                f"MPTCP endpoint id {new.id} is already in use by {endpoint.address}"
            )
    if len(table) >= MAX_ENDPOINTS and not replaces_implicit:
        raise InvalidArgument(
            f"cannot add {new.address}: at most {MAX_ENDPOINTS} endpoints per namespace"
        )


def validate_limits(limits: Limits) -> None:
    validate_limit("subflows", limits.subflows)
    validate_limit("add_addr_accepted", limits.add_addr_accepted)


def validate_changeable(flags: frozenset[EndpointFlag]) -> None:
    extra = flags - CHANGEABLE_FLAGS
    if extra:
        names = ", ".join(sorted(flag.value for flag in extra))
        raise InvalidArgument(
            f"endpoint flags {names} cannot be changed (only backup and fullmesh can)"
        )


def set_flags(current: Endpoint, wanted: frozenset[EndpointFlag]) -> int:
    """The whole flag word to send with SET_FLAGS so only ``wanted`` changes.

    ``mptcp_pm_nl_set_flags`` (net/mptcp/pm_kernel.c) does
    ``entry->flags = (entry->flags & ~mask) | (local->flags & mask)`` with
    mask = BACKUP|FULLMESH: sending only "backup" clears fullmesh.  So
    ``wanted`` is the complete backup/fullmesh state the caller asks for, and
    the caller's other flags are carried over from ``current`` unchanged.
    The kernel also refuses fullmesh on a signal endpoint; check it here first.
    """
    validate_changeable(wanted)
    if EndpointFlag.FULLMESH in wanted and EndpointFlag.SIGNAL in current.flags:
        raise InvalidArgument(
            f"endpoint {current.id} has 'signal'; 'fullmesh' cannot be combined with it"
        )
    return flags_to_word((current.flags - CHANGEABLE_FLAGS) | wanted)


def mixed_families_warning(new: Endpoint, existing: Iterable[Endpoint]) -> str | None:
    """A warning when ``new`` is of another address family than the endpoints already there.

    The Red Hat guide: "MPTCP does not yet support mixing IPv6 and IPv4
    endpoints for the same socket.  Use endpoints of the same address family."
    The kernel accepts both, so this is advice, not a refusal.
    """
    others = sorted(
        {
            str(endpoint.address)
            for endpoint in existing
            if endpoint.address.version != new.address.version
        }
    )
    if not others:
        return None
    return (
        f"endpoint {new.address} is IPv{new.address.version} but {', '.join(others)} "
        f"{'is' if len(others) == 1 else 'are'} IPv{6 if new.address.version == 4 else 4}: "
        "one MPTCP connection cannot mix IPv4 and IPv6 subflows"
    )
