"""Split DNS: which connection answers which domain, as one pure function of the state.

With `dns=dnsmasq` or `dns=systemd-resolved` the resolver file points at a local resolver and
netpathd hands it a routing table: queries for a connection's domains go to that connection's
servers, everything else to the servers of the connection holding the default route.  The rules
are NetworkManager's `_mgr_configs_data_construct()` (`src/core/dns/nm-dns-manager.c`), walked
over the entries in the order `model.dns.order` already gives (priority, VPN, best default
route, creation):

* only entries that are used (not excluded by a negative priority) and have servers claim
  domains; their domains are `dns-search` entries, `~domain` routing-only ones included;
* the default domain (`.`) is claimed explicitly by `~.`, else automatically by the entries
  whose interface holds the best default route of their family; when no entry holds one,
  every non-VPN entry may claim it (NM's fallback);
* a domain already claimed with a lower priority is lost.

NetworkManager also lets a parent domain claimed with a lower *negative* priority shadow its
subdomains (`_domain_track_is_shadowed()`).  Here the negative-priority exclusion of the order
already decides that: when the lowest priority is negative only entries of exactly that
priority are used, and otherwise no used entry is negative, so no claimant could ever be
shadowed and there is no such rule.

One deliberate difference: NetworkManager gives a domain claimed at *equal* priority to every
claimant, and systemd-resolved then sends the query to all of them and takes the first answer
(measured), which breaks the guide's rule.  Here the first claimant in the order wins alone and
the others are listed as losers, with why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netpathd.model.dns import (
    VPN_TYPES,
    DnsConnection,
    DnsResult,
    GlobalDnsPriority,
    NameServer,
    Status,
    order,
    render_server,
)
from netpathd.model.dns_plan import DEFAULT_DOMAIN, DnsMode, DnsPlan, resolver_file
from netpathd.model.links import Family, NetState


@dataclass(frozen=True, slots=True)
class DomainLoser:
    """A connection that claimed a domain and did not get it, with why."""

    connection: str
    interface_name: str
    priority: int
    reason: str


@dataclass(frozen=True, slots=True)
class DomainRoute:
    """One domain (`.` for everything else) and the one connection that answers it."""

    domain: str
    connection: str
    interface_name: str
    ifindex: int
    servers: tuple[str, ...]  # as resolv.conf spells them
    priority: int
    reason: str
    losers: tuple[DomainLoser, ...] = ()


@dataclass(frozen=True, slots=True)
class LinkDns:
    """What one interface gets in a per-link resolver (systemd-resolved's SetLink* calls)."""

    ifindex: int
    interface_name: str
    connection: str
    servers: tuple[NameServer, ...]
    domains: tuple[tuple[str, bool], ...]  # (domain, routing-only); "." is the default domain
    default_route: bool


@dataclass(frozen=True, slots=True)
class _Claimant:
    """A used entry with servers, on a link that exists: it may claim domains."""

    conn: DnsConnection
    family: Family
    ifindex: int
    priority: int
    reason: str  # the entry's rank reason from the order


@dataclass
class _Claim:
    """The current winner of one domain while the claimants are walked."""

    claimant: _Claimant
    routing_only: bool
    losers: list[DomainLoser]


def domain_key(domain: str) -> str:
    """`~Corp.Example` -> `corp.example`; `~.` -> `.`: domains compare without case and `~`."""
    name = domain.removeprefix("~").lower()
    return name or DEFAULT_DOMAIN


def _claimants(
    connections: Mapping[str, DnsConnection], result: DnsResult, state: NetState
) -> list[_Claimant]:
    claimants = []
    for entry in result.entries:
        if entry.status is not Status.USED:
            continue  # most entries, with many connections: skip them before any lookup
        conn = connections[entry.connection]
        link = state.link_by_name(conn.interface_name)
        if link is None or not conn.family(entry.family).servers:
            continue
        claimants.append(_Claimant(conn, entry.family, link.ifindex, entry.priority, entry.reason))
    return claimants


def _auto_default(claimants: list[_Claimant], state: NetState) -> set[int]:
    """Indexes of the claimants that may take `.` without asking (NM's wildcard entries)."""
    holders = set()
    for index, claimant in enumerate(claimants):
        best = state.best_default_route(claimant.family)
        if best is not None and best.ifindex == claimant.ifindex:
            holders.add(index)
    if holders:
        return holders
    fallback = {i for i, c in enumerate(claimants) if c.conn.type not in VPN_TYPES}
    # Only VPNs left (a negative priority excluded the rest): they take everything.
    return fallback or set(range(len(claimants)))


def loss_reason(winner: str, winner_priority: int, winner_reason: str, priority: int) -> str:
    """Why a claimant with `priority` lost a domain to the connection `winner`."""
    if winner_priority < priority:
        return f"{winner} claims it with lower priority {winner_priority}"
    return f"same priority; {winner} ranks first: {winner_reason}"


def _contest(claims: dict[str, _Claim], key: str, claimant: _Claimant, routing_only: bool) -> None:
    held = claims.get(key)
    if held is None:
        claims[key] = _Claim(claimant, routing_only, [])
        return
    winner = held.claimant
    if winner.conn.name == claimant.conn.name:
        held.routing_only = held.routing_only and routing_only
        return
    if any(loser.connection == claimant.conn.name for loser in held.losers):
        return
    why = loss_reason(winner.conn.name, winner.priority, winner.reason, claimant.priority)
    held.losers.append(
        DomainLoser(claimant.conn.name, claimant.conn.interface_name, claimant.priority, why)
    )


def _servers_by_connection(claimants: list[_Claimant]) -> dict[str, tuple[NameServer, ...]]:
    """Every server of each connection's used entries, IPv4 first, each once.

    One pass over the claimants: asked per route and per link, a scan each time made a
    plan quadratic in the number of connections.
    """
    servers: dict[str, list[NameServer]] = {}
    for claimant in claimants:
        known = servers.setdefault(claimant.conn.name, [])
        known += [s for s in claimant.conn.family(claimant.family).servers if s not in known]
    return {name: tuple(found) for name, found in servers.items()}


def plan(
    connections: Iterable[DnsConnection],
    state: NetState,
    global_priority: GlobalDnsPriority,
    mode: DnsMode,
) -> DnsPlan:
    """The resolver order, the domain routes, the per-link view and the resolver file."""
    by_name = {conn.name: conn for conn in connections}
    return routed_plan(by_name, order(by_name.values(), state, global_priority), state, mode)


def routed_plan(
    connections: Mapping[str, DnsConnection], result: DnsResult, state: NetState, mode: DnsMode
) -> DnsPlan:
    """`plan()` for an order already computed (`model.dns_index` keeps one current)."""
    claimants = _claimants(connections, result, state)
    auto_default = _auto_default(claimants, state)
    claims: dict[str, _Claim] = {}
    for index, claimant in enumerate(claimants):
        for domain in claimant.conn.family(claimant.family).search:
            _contest(claims, domain_key(domain), claimant, domain.startswith("~"))
        if index in auto_default:
            _contest(claims, DEFAULT_DOMAIN, claimant, routing_only=True)

    servers_of = _servers_by_connection(claimants)
    rendered: dict[str, tuple[str, ...]] = {}  # per connection: one rendering for all its routes
    routes = []
    domains = sorted(claims, key=lambda k: (k != DEFAULT_DOMAIN, k))
    for key in domains:
        claim = claims[key]
        conn = claim.claimant.conn
        servers = rendered.get(conn.name)
        if servers is None:
            servers = tuple(render_server(s, conn.interface_name) for s in servers_of[conn.name])
            rendered[conn.name] = servers
        routes.append(
            DomainRoute(
                domain=key,
                connection=conn.name,
                interface_name=conn.interface_name,
                ifindex=claim.claimant.ifindex,
                servers=servers,
                priority=claim.claimant.priority,
                reason=claim.claimant.reason,
                losers=tuple(claim.losers),
            )
        )
    links = _links(claimants, [(key, claims[key]) for key in domains], servers_of)
    resolver = resolver_file(result.nameservers, result.searches, result.options, mode)
    return DnsPlan(mode, result, tuple(routes), links, resolver)


def _links(
    claimants: list[_Claimant],
    claims: list[tuple[str, _Claim]],  # sorted by domain, "." first
    servers_of: dict[str, tuple[NameServer, ...]],
) -> tuple[LinkDns, ...]:
    """One entry per interface: its connections' servers and the domains they won."""
    first: dict[int, _Claimant] = {}
    servers: dict[int, list[NameServer]] = {}
    for claimant in claimants:
        first.setdefault(claimant.ifindex, claimant)
        known = servers.setdefault(claimant.ifindex, [])
        known += [s for s in servers_of[claimant.conn.name] if s not in known]
    domains: dict[int, list[tuple[str, bool]]] = {ifindex: [] for ifindex in first}
    for key, claim in claims:
        domains[claim.claimant.ifindex].append((key, claim.routing_only))
    return tuple(
        LinkDns(
            ifindex=ifindex,
            interface_name=first[ifindex].conn.interface_name,
            connection=first[ifindex].conn.name,
            servers=tuple(servers[ifindex]),
            domains=tuple(domains[ifindex]),
            default_route=any(key == DEFAULT_DOMAIN for key, _ in domains[ifindex]),
        )
        for ifindex in sorted(first)
    )
