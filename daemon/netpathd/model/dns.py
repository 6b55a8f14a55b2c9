"""DNS server ordering: which connection's servers go first in resolv.conf, and why.

NetworkManager keeps one list of (connection, address family) entries, sorts it with one
comparator and merges it with one loop (`src/core/dns/nm-dns-manager.c`:
`_mgr_get_ip_data_lst_cmp()`, `_collect_resolv_conf_data()`, `merge_one_l3cd()`).  This module
is the same comparator and merge loop as a pure function of the current state:

* Priority: the connection's `ipvX.dns-priority`, else (for device connections, WireGuard
  included) the global default `ipvX.dns-priority`, else 50 for VPN and 100 for the rest
  (`src/core/devices/nm-device.c`: `_prop_get_ipvx_dns_priority()`).  Plugin VPN connections
  never read the global default: `src/core/vpn/nm-vpn-connection.c` passes
  `NM_DNS_PRIORITY_DEFAULT_VPN` as the default to `nm_l3cfg_add_config()`.
* Lower priority first; among equals VPN first (plugin VPN, and WireGuard because
  `nm_device_is_vpn()` is true for it, `src/core/nm-policy.c`), then the entry whose interface
  holds the best default route of its family (NM's `NM_DNS_IP_CONFIG_TYPE_BEST_DEVICE`), then
  the rest.
* A negative lowest priority keeps only the entries with exactly that priority.

History independence.  NetworkManager breaks remaining ties by the order in which
configurations were handed to the DNS manager, so the result depends on what happened
before: measured with NM 1.42, an entry with a negative priority and no DNS data excluded the
others only when it was activated first.  netpathd is a pure function of the current state:
full ties follow the order in which connections were created (`created_seq`), IPv4 before
IPv6 of the same connection, and every active entry takes part in the negative-priority
exclusion whether or not it carries DNS data, so a negative priority on an active connection
always excludes every larger value, in whatever order the connections came up.  This is the
rule the Red Hat guide states ("a negative value excludes other configurations with a larger
value").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from netpathd.model.links import Family, NetState

NameServer = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS_PRIORITY_DEFAULT_VPN = 50  # NM_DNS_PRIORITY_DEFAULT_VPN
DNS_PRIORITY_DEFAULT_NORMAL = 100  # NM_DNS_PRIORITY_DEFAULT_NORMAL

VPN_PLUGIN_TYPE = "vpn"
WIREGUARD_TYPE = "wireguard"
VPN_TYPES = frozenset({VPN_PLUGIN_TYPE, WIREGUARD_TYPE})
"""Connection types that default to priority 50 and rank as VPN in the tie-break."""

TRUST_AD = "trust-ad"


@dataclass(frozen=True, slots=True)
class DnsFamilyConfig:
    """One address family's DNS settings of a connection (`ipv4.dns*` or `ipv6.dns*`)."""

    servers: tuple[NameServer, ...] = ()
    search: tuple[str, ...] = ()  # "~domain" is a routing-only domain
    options: tuple[str, ...] = ()
    priority: int = 0  # 0: use the default (global, then 50/100)

    @property
    def has_dns_data(self) -> bool:
        return bool(self.servers or self.search or self.options)


EMPTY_FAMILY_CONFIG = DnsFamilyConfig()


@dataclass(frozen=True, slots=True)
class DnsConnection:
    """One connection's DNS settings, in NetworkManager's terms (`ipv4.dns`, `dns-priority`...)."""

    name: str
    interface_name: str
    type: str  # NetworkManager's connection.type name, e.g. "ethernet", "vpn", "wireguard"
    ipv4: DnsFamilyConfig = EMPTY_FAMILY_CONFIG
    ipv6: DnsFamilyConfig = EMPTY_FAMILY_CONFIG
    created_seq: int = 0  # creation order: the tie-break of last resort
    metric: int = 0  # resolvconf's -m: orders equal priority and rank, lower first

    def family(self, family: Family) -> DnsFamilyConfig:
        return self.ipv4 if family is Family.IPV4 else self.ipv6


@dataclass(frozen=True, slots=True)
class GlobalDnsPriority:
    """NM's `[connection] ipv4.dns-priority` / `ipv6.dns-priority` defaults; 0 means unset."""

    ipv4: int = 0
    ipv6: int = 0

    def get(self, family: Family) -> int:
        return self.ipv4 if family is Family.IPV4 else self.ipv6


class Rank(Enum):
    """The tie-break among equal priorities, best first (NM's NMDnsIPConfigType, reversed)."""

    VPN = "vpn"
    DEFAULT_ROUTE = "default-route"
    OTHER = "other"


_RANK_ORDER = {Rank.VPN: 0, Rank.DEFAULT_ROUTE: 1, Rank.OTHER: 2}


class Status(Enum):
    USED = "used"
    NO_DNS_DATA = "no-dns-data"  # ordered and takes part in the exclusion, contributes nothing
    EXCLUDED = "excluded-by-negative-priority"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class DnsEntry:
    """The explanation of one (connection, family) candidate."""

    connection: str
    interface_name: str
    family: Family
    priority: int
    priority_source: str  # "connection", "global default", "vpn default", "default"
    rank: Rank | None  # None when inactive
    status: Status
    reason: str
    servers: tuple[str, ...] = ()  # as written to resolv.conf, new ones only
    duplicates: tuple[str, ...] = ()  # servers already listed by an earlier entry

    @property
    def included(self) -> bool:
        return self.status is Status.USED

    def describe(self) -> str:
        rank = self.rank.value if self.rank is not None else "-"
        return (
            f"{self.connection} ({self.interface_name}) IPv{self.family.value}: "
            f"priority {self.priority} ({self.priority_source}), rank {rank}, "
            f"{self.status.value}: {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class DnsResult:
    """The merged order: what the resolver file lists, and every entry with its rank or why not."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    entries: tuple[DnsEntry, ...] = ()  # active entries in order, then inactive ones

    def explain(self) -> tuple[str, ...]:
        return tuple(entry.describe() for entry in self.entries)


def effective_priority(
    conn: DnsConnection, family: Family, global_priority: GlobalDnsPriority
) -> tuple[int, str]:
    """The priority NM would use for this entry, and where it came from."""
    configured = conn.family(family).priority
    if configured != 0:
        return configured, "connection"
    if conn.type == VPN_PLUGIN_TYPE:
        return DNS_PRIORITY_DEFAULT_VPN, "vpn default"
    if global_priority.get(family) != 0:
        return global_priority.get(family), "global default"
    if conn.type == WIREGUARD_TYPE:
        return DNS_PRIORITY_DEFAULT_VPN, "vpn default"
    return DNS_PRIORITY_DEFAULT_NORMAL, "default"


def option_name(option: str) -> str:
    """`ndots:2` -> `ndots`: options merge by name (NM's `_nm_utils_dns_option_find_idx()`)."""
    return option.partition(":")[0]


def render_server(server: NameServer, interface_name: str) -> str:
    """The resolv.conf spelling of a server, as `merge_one_l3cd()` writes it.

    IPv4-mapped IPv6 servers are written as IPv4; IPv6 link-local servers get `%ifname` of
    the entry's own interface, whatever scope they were given, because that is the only
    interface the server is known to be reachable through.
    """
    if isinstance(server, ipaddress.IPv4Address):
        return str(server)
    if server.ipv4_mapped is not None:
        return str(server.ipv4_mapped)
    bare = ipaddress.IPv6Address(int(server))
    if bare.is_link_local:
        return f"{bare}%{interface_name}"
    return str(bare)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One active (connection, family) entry before the merge: what its place depends on."""

    conn: DnsConnection
    family: Family
    config: DnsFamilyConfig
    priority: int
    priority_source: str
    rank: Rank
    rank_reason: str

    def entry(
        self, status: Status, reason: str, servers: tuple[str, ...], duplicates: tuple[str, ...]
    ) -> DnsEntry:
        return DnsEntry(
            connection=self.conn.name,
            interface_name=self.conn.interface_name,
            family=self.family,
            priority=self.priority,
            priority_source=self.priority_source,
            rank=self.rank,
            status=status,
            reason=reason,
            servers=servers,
            duplicates=duplicates,
        )

    def sort_key(self) -> tuple[int, int, int, int, int, str]:
        return (
            self.priority,
            _RANK_ORDER[self.rank],
            self.conn.metric,
            self.conn.created_seq,
            self.family.value,
            self.conn.name,
        )


def inactive_reason(conn: DnsConnection, state: NetState) -> str | None:
    link = state.link_by_name(conn.interface_name)
    if link is None:
        return f"interface {conn.interface_name} does not exist"
    if not link.up:
        return f"interface {conn.interface_name} is down"
    return None


def rank_of(conn: DnsConnection, family: Family, state: NetState) -> tuple[Rank, str]:
    if conn.type in VPN_TYPES:
        return Rank.VPN, f"vpn (connection.type {conn.type})"
    best = state.best_default_route(family)
    link = state.link_by_name(conn.interface_name)
    if best is not None and link is not None and best.ifindex == link.ifindex:
        return Rank.DEFAULT_ROUTE, (
            f"default-route ({conn.interface_name} holds the best IPv{family.value} "
            f"default route, metric {best.metric})"
        )
    return Rank.OTHER, "other (neither VPN nor the best default route)"


class _Merge:
    """The merge loop of `_collect_resolv_conf_data()`: first occurrence wins everywhere."""

    def __init__(self) -> None:
        self.nameservers: list[str] = []
        self.searches: list[str] = []
        # Membership of the two lists: with thousands of entries a list scan per add
        # made the merge quadratic.
        self.seen_nameservers: set[str] = set()
        self.seen_searches: set[str] = set()
        self.options: list[str] = []
        self.option_names: set[str] = set()
        self.trust_ad: bool | None = None  # NMTernary: unset until an entry with servers

    def add(self, cand: Candidate) -> tuple[tuple[str, ...], tuple[str, ...]]:
        new: list[str] = []
        dups: list[str] = []
        for server in cand.config.servers:
            text = render_server(server, cand.conn.interface_name)
            if text in self.seen_nameservers:
                dups.append(text)
            else:
                self.seen_nameservers.add(text)
                self.nameservers.append(text)
                new.append(text)
        for domain in cand.config.search:
            if not domain.startswith("~") and domain not in self.seen_searches:
                self.seen_searches.add(domain)
                self.searches.append(domain)
        has_trust_ad = False
        for option in cand.config.options:
            if option == TRUST_AD:
                has_trust_ad = True
            elif option_name(option) not in self.option_names:
                self.option_names.add(option_name(option))
                self.options.append(option)
        # merge_one_l3cd(): an entry without servers has no say on trust-ad; one with servers
        # but without trust-ad switches it off for good.
        if cand.config.servers:
            if not has_trust_ad:
                self.trust_ad = False
            elif self.trust_ad is None:
                self.trust_ad = True
        return tuple(new), tuple(dups)

    def final_options(self) -> tuple[str, ...]:
        return (*self.options, TRUST_AD) if self.trust_ad else tuple(self.options)


def candidates_of(
    conn: DnsConnection, state: NetState, global_priority: GlobalDnsPriority
) -> tuple[list[Candidate], list[DnsEntry]]:
    """The connection's two entries: as candidates when its link is up, else inactive."""
    why_inactive = inactive_reason(conn, state)
    candidates: list[Candidate] = []
    inactive: list[DnsEntry] = []
    for family in Family:
        priority, source = effective_priority(conn, family, global_priority)
        if why_inactive is not None:
            inactive.append(
                DnsEntry(
                    connection=conn.name,
                    interface_name=conn.interface_name,
                    family=family,
                    priority=priority,
                    priority_source=source,
                    rank=None,
                    status=Status.INACTIVE,
                    reason=why_inactive,
                )
            )
            continue
        rank, rank_reason = rank_of(conn, family, state)
        candidates.append(
            Candidate(conn, family, conn.family(family), priority, source, rank, rank_reason)
        )
    return candidates, inactive


def excluded_reason(lowest: Candidate) -> str:
    return (
        f"excluded by negative priority {lowest.priority} "
        f"of {lowest.conn.name} IPv{lowest.family.value}"
    )


def order(
    connections: Iterable[DnsConnection],
    state: NetState,
    global_priority: GlobalDnsPriority,
) -> DnsResult:
    """Order and merge the DNS settings of the active connections; explain every entry.

    The definition, recomputed from scratch; `model.dns_index.DnsIndex` keeps the same
    result up to date one change at a time, and the tests hold the two equal.
    """
    candidates: list[Candidate] = []
    inactive: list[DnsEntry] = []
    for conn in sorted(connections, key=lambda c: (c.created_seq, c.name)):
        active, gone = candidates_of(conn, state, global_priority)
        candidates += active
        inactive += gone
    candidates.sort(key=Candidate.sort_key)

    lowest = candidates[0] if candidates else None
    merge = _Merge()
    entries: list[DnsEntry] = []
    for cand in candidates:
        servers: tuple[str, ...] = ()
        dups: tuple[str, ...] = ()
        if lowest is not None and lowest.priority < 0 and cand.priority != lowest.priority:
            status = Status.EXCLUDED
            reason = excluded_reason(lowest)
        elif not cand.config.has_dns_data:
            status = Status.NO_DNS_DATA
            reason = no_dns_data_reason(cand)
        else:
            status = Status.USED
            reason = cand.rank_reason
            servers, dups = merge.add(cand)
        entries.append(cand.entry(status, reason, servers, dups))

    return DnsResult(
        nameservers=tuple(merge.nameservers),
        searches=tuple(merge.searches),
        options=merge.final_options(),
        entries=(*entries, *inactive),
    )


def no_dns_data_reason(cand: Candidate) -> str:
    return f"{cand.rank_reason}; no DNS data"
