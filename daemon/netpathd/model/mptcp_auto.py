"""Automatic MPTCP endpoints: what NetworkManager's ``connection.mptcp-flags`` does, as a plan.

One pure function, :func:`plan`, turns the policy, the links and addresses, the
kernel's endpoint table and what netpathd added earlier into the changes to make.
Nothing here does I/O; the engine reads the kernel, calls :func:`plan`, applies
the result in the order removes, flag changes, adds, limits, rp_filter, and
stores ``Plan.owned`` / ``Plan.rp_touched`` for the next round.  Applying a plan
and planning again gives an empty plan (the unit tests check it by property).

NetworkManager's rules, and where they are (1.42-1.56 source):

* eligibility, per address family of each link: ``_l3_commit_mptcp_af()`` in
  src/core/nm-l3cfg.c.  Only when the family has a default route *on that link*
  (``nm_l3_config_data_get_best_default_route(l3cd, addr_family)``) unless
  ``also-without-default-route``; never host or link scope, computed from the
  address like the kernel does (``nm_platform_ip_address_get_scope()`` in
  src/libnm-platform/nm-platform.h: 127/8 and ::1 host, 169.254/16 and
  fe80::/10 link); IPv6 ULA fc00::/7 skipped (``nm_ip6_addr_is_ula()``, in
  src/libnm-glib-aux) while IPv4 RFC 1918 and IPv6 fec0::/10 are taken;
  IPv6 addresses that are still tentative (DAD) wait; the same flags for every
  address; id 0 and no port, so the kernel picks the id.
* the sysctl: without ``also-without-sysctl`` nothing happens while
  ``net.mptcp.enabled`` is 0 (``_prop_get_connection_mptcp_flags()`` in
  src/core/devices/nm-device.c).  NetworkManager never writes that sysctl.
* the order and the cap: the n-th address of a link and family gets priority
  100-n, so every link's first address comes before any link's second one;
  equal priorities keep the order in which they were tracked (IPv4 before IPv6
  of a link); the same address on two links is configured once; at most
  ``MPTCP_PM_ADDR_MAX`` (8) (``nmp_global_tracker_sync_mptcp_addrs()`` and
  ``_mptcp_entries_cmp()`` in src/libnm-platform/nmp-global-tracker.c).
* ownership: endpoints with a port or without an ifindex are never touched, and
  only what NetworkManager added is removed (its tombstones, same file).
* rp_filter: 1 (strict) becomes 2 (loose) on links where IPv4 MPTCP is handled,
  and goes back to 1 later only if it still reads 2 (``_rp_filter_update()`` in
  src/core/nm-l3cfg.c).

Where netpathd differs, each explained where it happens: off unless mptcp.conf
has ``[auto]`` (``parse_auto_policy``); rules per interface glob and per prefix;
the conditions are evaluated on every plan (NetworkManager caches the sysctl at
activation); an endpoint someone else holds is left alone and its address
skipped; the cap counts everyone's endpoints; implicit endpoints are taken
over; backup/fullmesh change in place; limits may follow; rp_filter is
loosened only where an IPv4 endpoint is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netpathd.model.links import Address, Family, Link, NetState
from netpathd.model.mptcp import (
    CHANGEABLE_FLAGS,
    MAX_ENDPOINTS,
    MAX_LIMIT,
    Endpoint,
    EndpointFlag,
    Limits,
)
from netpathd.model.mptcp_auto_config import AutoPolicy, LimitsMode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

OwnedKey = tuple[IPAddress, int]
"""(address, port) of an endpoint netpathd added; the port is always 0 for automatic ones."""

RP_FILTER_STRICT = 1
RP_FILTER_LOOSE = 2

_ULA = ipaddress.IPv6Network("fc00::/7")
_RT_SCOPE_LINK = 253
_RT_SCOPE_HOST = 254


def skip_reason(address: Address) -> str | None:
    """Why an address never gets an automatic endpoint, or None when it may get one.

    Scope is taken both from the address (NetworkManager's way) and from
    ``ifa_scope``, so an address someone added with ``scope link`` is skipped too.
    """
    value = address.address
    if value.is_loopback or address.scope == _RT_SCOPE_HOST:
        return "host scope"
    if value.is_link_local or address.scope == _RT_SCOPE_LINK:
        return "link scope"
    if isinstance(value, ipaddress.IPv6Address) and value in _ULA:
        return "IPv6 unique local address (fc00::/7)"
    if address.tentative:
        return "tentative (duplicate address detection not finished)"
    return None


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An address the policy wants that gets no endpoint, and why (for logs and explain)."""

    address: IPAddress
    interface: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlagChange:
    """An owned endpoint whose backup/fullmesh flags the policy now wants otherwise.

    ``flags`` is the complete wanted set; SET_FLAGS overwrites backup and
    fullmesh together, so send ``mptcp.set_flags(endpoint, flags & CHANGEABLE_FLAGS)``.
    A change of signal or subflow cannot be made in place: it is a remove and an add.
    """

    endpoint: Endpoint
    flags: frozenset[EndpointFlag]


@dataclass(frozen=True, slots=True)
class RpFilterWrite:
    """Write ``value`` to ``net.ipv4.conf.<interface>.rp_filter``."""

    interface: str
    value: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do, in this order: remove, change, add (as listed), limits, rp_filter.

    Removes go first because a changed interface or signal/subflow flag is a
    remove and an add of the same address.  ``owned`` and ``rp_touched`` are
    what netpathd must remember once everything succeeded; when an add fails,
    drop its key, when a remove fails, keep it.
    """

    add: tuple[Endpoint, ...] = ()
    remove: tuple[Endpoint, ...] = ()
    change: tuple[FlagChange, ...] = ()
    owned: frozenset[OwnedKey] = frozenset()
    limits: Limits | None = None  # None: leave the limits alone
    rp_filter: tuple[RpFilterWrite, ...] = ()
    rp_touched: frozenset[str] = frozenset()
    left_out: tuple[LeftOut, ...] = ()

    @property
    def empty(self) -> bool:
        """True when there is nothing to write (``owned`` and ``rp_touched`` are state)."""
        return not (self.add or self.remove or self.change or self.rp_filter) and (
            self.limits is None
        )


@dataclass(frozen=True, slots=True)
class _Want:
    address: IPAddress
    link: Link
    flags: frozenset[EndpointFlag]


def plan(
    policy: AutoPolicy,
    state: NetState,
    mptcp_enabled: bool,
    kernel_endpoints: Iterable[Endpoint],
    owned: frozenset[OwnedKey],
    *,
    limits: Limits | None = None,
    rp_filter: Mapping[str, int] | None = None,
    rp_touched: frozenset[str] = frozenset(),
) -> Plan:
    """The changes that make the kernel match the policy, touching only what netpathd owns.

    ``limits`` are the kernel's current limits (None: not known, nothing is
    planned for them); ``rp_filter`` maps link names to their current
    ``net.ipv4.conf.IFNAME.rp_filter``; ``rp_touched`` names the links where
    netpathd wrote 2 earlier.
    """
    table = tuple(kernel_endpoints)
    ours = {
        endpoint.address: endpoint
        for endpoint in table
        if endpoint.port == 0
        and (endpoint.address, 0) in owned
        and EndpointFlag.IMPLICIT not in endpoint.flags
    }
    foreign = [endpoint for endpoint in table if ours.get(endpoint.address) != endpoint]
    wanted, replacing, left_out = _select(_wanted(policy, state, mptcp_enabled), foreign, ours)

    remove: list[Endpoint] = []
    change: list[FlagChange] = []
    for address, current in sorted(ours.items(), key=lambda item: _sort_key(item[0])):
        want = wanted.get(address)
        if want is None or not _in_place(current, want):
            # NetworkManager deletes and re-adds on any difference; the kernel can
            # only change backup and fullmesh in place (mptcp_pm_nl_set_flags()).
            remove.append(current)
        elif current.flags != want.flags:
            change.append(FlagChange(current, want.flags))
    add = [
        _endpoint(want)
        for address, want in wanted.items()
        if address not in ours or not _in_place(ours[address], want)
    ]
    # Replacing an implicit endpoint needs a free slot (the kernel checks the count
    # first), so those go before the adds that fill the table.
    add.sort(key=lambda endpoint: _same_key(endpoint.address) not in replacing)

    writes, touched = _rp_filter(wanted.values(), state, rp_filter or {}, rp_touched)
    return Plan(
        add=tuple(add),
        remove=tuple(remove),
        change=tuple(change),
        owned=frozenset((address, 0) for address in wanted),
        limits=_limits(policy.limits, limits, wanted.values()),
        rp_filter=writes,
        rp_touched=touched,
        left_out=left_out,
    )


def _in_place(current: Endpoint, want: _Want) -> bool:
    """Whether ``current`` can stay, at most with a SET_FLAGS for backup/fullmesh."""
    return current.ifindex == want.link.ifindex and (current.flags - CHANGEABLE_FLAGS) == (
        want.flags - CHANGEABLE_FLAGS
    )


def _wanted(policy: AutoPolicy, state: NetState, mptcp_enabled: bool) -> list[_Want]:
    """Every address the policy wants, in NetworkManager's order of preference.

    NetworkManager orders the addresses of one link and family as its
    configuration lists them; the kernel's dump gives netpathd no such order, so
    it takes them by address value.  For equal rank, it prefers the lower
    ifindex (NetworkManager: the link it committed first), IPv4 before IPv6.
    """
    ranked: list[tuple[tuple[int, int, int, bytes], _Want]] = []
    for link in sorted(state.links.values(), key=lambda link: link.ifindex):
        if not link.up:
            continue
        for family in (Family.IPV4, Family.IPV6):
            # A linkdown route is no default route: NetworkManager drops a device's
            # configuration, and so its default route, when the carrier goes.
            has_default = state.has_default_route(link.ifindex, family)
            addresses = sorted(
                (
                    address
                    for address in state.addresses_on(link.ifindex)
                    if address.family is family and skip_reason(address) is None
                ),
                key=lambda address: address.address.packed,
            )
            rank = 0  # only addresses that get tracked count, as in _l3_commit_mptcp_af()
            for address in addresses:
                rule = policy.rule_for(link.name, address.address)
                if not rule.enabled:
                    continue
                if not mptcp_enabled and not rule.also_without_sysctl:
                    continue
                if not has_default and not rule.also_without_default_route:
                    continue
                key = (rank, link.ifindex, family.value, address.address.packed)
                ranked.append((key, _Want(address.address, link, rule.flags)))
                rank += 1
    ranked.sort(key=lambda item: item[0])
    return [want for _, want in ranked]


def _select(
    candidates: list[_Want], foreign: list[Endpoint], ours: Mapping[IPAddress, Endpoint]
) -> tuple[dict[IPAddress, _Want], frozenset[IPAddress], tuple[LeftOut, ...]]:
    """The candidates that fit, leaving everyone else's endpoints as they are.

    Unlike NetworkManager, which deletes an endpoint it did not add when it
    wants the same address on a link it handles, netpathd skips the address.
    The cap counts the endpoints of others too (NetworkManager counts only its
    own and lets the kernel refuse the rest).  The list is cut at the first
    candidate that does not fit, never skipped over: that keeps the choice the
    same once the plan is applied.

    ``mptcp_pm_nl_append_new_local_addr()`` lets a new endpoint take over an
    ``implicit`` one of the same address (keeping its id), so that costs no
    slot in the end; but it refuses with ERANGE when the table is full before
    the takeover, so takeovers need one free slot while they happen.
    """
    held = {
        _same_key(endpoint.address): endpoint
        for endpoint in foreign
        if endpoint.port == 0 and EndpointFlag.IMPLICIT not in endpoint.flags
    }
    implicit = {
        _same_key(endpoint.address)
        for endpoint in foreign
        if endpoint.port == 0 and EndpointFlag.IMPLICIT in endpoint.flags
    }
    free = MAX_ENDPOINTS - len(foreign)
    chosen: dict[IPAddress, _Want] = {}
    seen: dict[IPAddress, str] = {}
    left_out: list[LeftOut] = []
    full = False
    for want in candidates:
        key = _same_key(want.address)
        cost = 0 if key in implicit else 1
        if key in seen:
            reason = f"already used on {seen[key]}"
        elif key in held:
            reason = f"held by endpoint id {held[key].id}, which netpathd did not add"
        elif full or cost > free:
            full = True
            reason = f"over the kernel's limit of {MAX_ENDPOINTS} endpoints"
        else:
            free -= cost
            chosen[want.address] = want
            seen[key] = want.link.name
            continue
        left_out.append(LeftOut(want.address, want.link.name, reason))

    replacing = frozenset(_same_key(address) for address in chosen) & implicit
    staying = sum(
        1 for address, want in chosen.items() if address in ours and _in_place(ours[address], want)
    )
    if replacing and len(foreign) + staying >= MAX_ENDPOINTS:
        for address in [address for address in chosen if _same_key(address) in replacing]:
            want = chosen.pop(address)
            reason = "the kernel's implicit endpoint cannot be taken over: no free slot"
            left_out.append(LeftOut(address, want.link.name, reason))
        replacing = frozenset()
    return chosen, replacing, tuple(left_out)


def _limits(mode: LimitsMode, current: Limits | None, wanted: Iterable[_Want]) -> Limits | None:
    """``follow``: raise the limits so the automatic endpoints can be used; never lower them.

    Every subflow endpoint may open one more subflow and every signal endpoint
    may accept one (both count against ``subflows``, ``mptcp_pm_nl_check_work_pending()``
    / ``subflow_token_join_request()``).  A host with subflow endpoints acts as a
    client, and the Red Hat guide gives a client ``add_addr_accepted`` equal to
    ``subflows`` (``ip mptcp limits set subflow 1 add_addr_accepted 1``), so
    ``add_addr_accepted`` follows the subflow endpoints.  Nothing is ever
    lowered: netpathd cannot tell its own raise from the admin's, and lowering
    would cut subflows of live connections.  NetworkManager never sets limits.
    """
    if mode is LimitsMode.KEEP or current is None:
        return None
    flags = [want.flags for want in wanted]
    joins = sum(1 for f in flags if {EndpointFlag.SUBFLOW, EndpointFlag.SIGNAL} & f)
    subflows = sum(1 for f in flags if EndpointFlag.SUBFLOW in f)
    new = Limits(
        subflows=max(current.subflows, min(joins, MAX_LIMIT)),
        add_addr_accepted=max(current.add_addr_accepted, min(subflows, MAX_LIMIT)),
    )
    return None if new == current else new


def _rp_filter(
    wanted: Iterable[_Want],
    state: NetState,
    current: Mapping[str, int],
    touched: frozenset[str],
) -> tuple[tuple[RpFilterWrite, ...], frozenset[str]]:
    """Loosen strict reverse-path filtering where netpathd's IPv4 endpoints are, and undo it.

    Strict mode drops the replies of a subflow (and the joins towards a signal
    endpoint) whose reverse route leaves by another link.  Like
    ``_rp_filter_update()``: only 1 becomes 2, and 2 goes back to 1 only while it
    still reads 2, so a value someone set meanwhile stays.  NetworkManager
    loosens every link where IPv4 MPTCP is on, even without an endpoint there;
    netpathd only where it has an IPv4 endpoint.  Links are named, as the sysctl
    is; a renamed link loses the mark, and the old value stays.
    """
    needed = {want.link.name for want in wanted if want.address.version == 4}
    present = {link.name for link in state.links.values()}
    writes: list[RpFilterWrite] = []
    new_touched = set()
    for name in sorted(needed | touched):
        value = current.get(name)
        if name in needed:
            if name in touched:
                new_touched.add(name)  # set once; whatever is there now is someone's choice
            elif value == RP_FILTER_STRICT:
                writes.append(RpFilterWrite(name, RP_FILTER_LOOSE))
                new_touched.add(name)
        elif value == RP_FILTER_LOOSE and name in present:
            writes.append(RpFilterWrite(name, RP_FILTER_STRICT))
        elif value is None and name in present:
            new_touched.add(name)  # not read this time: decide when it is known
    return tuple(writes), frozenset(new_touched)


def _endpoint(want: _Want) -> Endpoint:
    return Endpoint(
        id=0,  # the kernel picks, as NetworkManager lets it
        address=want.address,
        interface=want.link.name,
        ifindex=want.link.ifindex,
        flags=want.flags,
    )


def _same_key(address: IPAddress) -> IPAddress:
    """The kernel treats an IPv4-mapped IPv6 address as the IPv4 one (mptcp_addresses_equal())."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _sort_key(address: IPAddress) -> tuple[int, bytes]:
    return address.version, address.packed
