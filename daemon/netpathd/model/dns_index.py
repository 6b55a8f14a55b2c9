"""The DNS order kept current one change at a time: `model.dns.order` without its O(N) per change.

NetworkManager sorts and merges its whole list again at every change
(`_collect_resolv_conf_data()` in `src/core/dns/nm-dns-manager.c`), which is cheap with the
few configurations a desktop has; with thousands of connections that made one change cost
tens of milliseconds here.  `DnsIndex` gives the same `DnsResult` (the tests hold it equal to
`order()` after any sequence of changes) while a change costs what it touches:

* a connection set or removed: its two entries leave and re-enter one sorted list (bisect),
  and the merge is corrected only where other entries list the same server, search domain or
  option name, because every such item remembers, in order, which entries list it, and the
  first listing wins (which is all the merge loop decides);
* a network change: only the connections bound to a link whose name or state changed, or to
  a link that gained or lost the best default route of a family;
* a new global default priority, and the start or end of a negative-priority exclusion (every
  entry's status changes then): everything again, as those touch every entry.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Collection, Iterable, Mapping

from netpathd.model.dns import (
    TRUST_AD,
    Candidate,
    DnsConnection,
    DnsEntry,
    DnsResult,
    GlobalDnsPriority,
    Status,
    candidates_of,
    excluded_reason,
    no_dns_data_reason,
    option_name,
    render_server,
)
from netpathd.model.links import DefaultRoute, Family, NetState

Key = tuple[int, int, int, int, int, str]  # Candidate.sort_key(): unique, in result order
InactiveKey = tuple[int, str, int]  # where order() lists an inactive entry
Listing = tuple[Key, int, str]  # (entry, position in the entry's list, text)
_UNSET = DnsEntry("", "", Family.IPV4, 0, "", None, Status.INACTIVE, "")


class _FirstWins:
    """Items many entries may list (servers, search domains, option names); the first wins."""

    def __init__(self) -> None:
        self._listings: dict[str, list[Listing]] = {}  # per item, in order
        self._heads: list[Listing] = []  # each item's first listing, in order: the merge
        self._texts: list[str] = []  # the heads' texts, by position: a copy is the merge
        self._merged: tuple[str, ...] | None = None

    def first(self, item: str) -> Listing:
        return self._listings[item][0]

    def merged(self) -> tuple[str, ...]:
        if self._merged is None:
            self._merged = tuple(self._texts)
        return self._merged

    def add(self, key: Key, items: Iterable[tuple[str, str]]) -> set[Key]:
        """List (item, text) pairs for `key`; the entries whose first listing moved."""
        moved: set[Key] = set()
        for index, (item, text) in enumerate(items):
            listing = (key, index, text)
            listings = self._listings.setdefault(item, [])
            old_head = listings[0] if listings else None
            insort(listings, listing)
            if listings[0] is listing:
                if old_head is not None:
                    self._drop_head(old_head)
                    moved.add(old_head[0])
                self._add_head(listing)
        return moved

    def remove(self, key: Key, items: Iterable[tuple[str, str]]) -> set[Key]:
        moved: set[Key] = set()
        for index, (item, text) in enumerate(items):
            listing = (key, index, text)
            listings = self._listings[item]
            at = bisect_left(listings, listing)
            del listings[at]
            if at == 0:
                self._drop_head(listing)
                if listings:
                    self._add_head(listings[0])
                    moved.add(listings[0][0])
                else:
                    del self._listings[item]
        return moved

    def _add_head(self, listing: Listing) -> None:
        at = bisect_left(self._heads, listing)
        self._heads.insert(at, listing)
        self._texts.insert(at, listing[2])
        self._merged = None

    def _drop_head(self, listing: Listing) -> None:
        at = bisect_left(self._heads, listing)
        del self._heads[at]
        del self._texts[at]
        self._merged = None


def _server_texts(cand: Candidate) -> list[str]:
    return [render_server(server, cand.conn.interface_name) for server in cand.config.servers]


def _holder(route: DefaultRoute | None) -> tuple[int, int] | None:
    """What of the best default route an entry's rank and its reason depend on."""
    return (route.ifindex, route.metric) if route is not None else None


class DnsIndex:
    """Connections, network state and global priority in; the current `DnsResult` out."""

    def __init__(self) -> None:
        self._state = NetState()
        self._global = GlobalDnsPriority()
        self._conns: dict[str, DnsConnection] = {}
        self._on_interface: dict[str, set[str]] = {}  # interface name -> connection names
        self._active: dict[str, list[Candidate]] = {}  # per connection
        self._inactive: dict[str, list[InactiveKey]] = {}
        self._keys: list[Key] = []  # every candidate, in order
        self._by_key: dict[Key, Candidate] = {}
        self._entry_at: list[DnsEntry] = []  # the entry of each key, by position: a copy
        # makes the result without hashing a key per entry
        self._inactive_keys: list[InactiveKey] = []
        self._inactive_at: list[DnsEntry] = []
        self._servers = _FirstWins()
        self._searches = _FirstWins()
        self._options = _FirstWins()
        self._with_servers = 0  # used entries with servers: they vote on trust-ad
        self._with_trust_ad = 0
        self._exclusion: Candidate | None = None  # the lowest entry, when its priority is < 0
        self._result: DnsResult | None = None
        # The connections placed again since take_journal(), for a reader that follows the
        # order one change at a time (model.dns_routes); None: all of them.
        self._journal: set[str] | None = None

    # -- reading ---------------------------------------------------------------

    @property
    def state(self) -> NetState:
        return self._state

    @property
    def global_priority(self) -> GlobalDnsPriority:
        return self._global

    @property
    def connections(self) -> Mapping[str, DnsConnection]:
        return self._conns

    @property
    def nameservers(self) -> tuple[str, ...]:
        return self._servers.merged()

    @property
    def searches(self) -> tuple[str, ...]:
        return self._searches.merged()

    @property
    def options(self) -> tuple[str, ...]:
        options = self._options.merged()
        trust_ad = self._with_servers > 0 and self._with_trust_ad == self._with_servers
        return (*options, TRUST_AD) if trust_ad else options

    def used(self, name: str) -> list[Candidate]:
        """The connection's entries that are used (contribute to the merge), in order."""
        used = [cand for cand in self._active.get(name, ()) if self._used(cand)]
        return sorted(used, key=Candidate.sort_key)

    def take_journal(self) -> set[str] | None:
        """The connections whose entries were placed again since the last call.

        None: any of them may have changed (the first call, or a change that touched every
        entry).  From the first call on, changes are recorded for the next.
        """
        touched, self._journal = self._journal, set()
        return touched

    @property
    def result(self) -> DnsResult:
        if self._result is None:
            self._result = DnsResult(
                nameservers=self.nameservers,
                searches=self.searches,
                options=self.options,
                entries=(
                    *self._entry_at,
                    *self._inactive_at,
                ),
            )
        return self._result

    # -- changes ---------------------------------------------------------------

    def put(self, conn: DnsConnection) -> None:
        """Add a connection or replace the one of that name."""
        old = self._conns.get(conn.name)
        if old == conn:
            return
        if old is not None:
            self._unbind(old)
        self._conns[conn.name] = conn
        self._on_interface.setdefault(conn.interface_name, set()).add(conn.name)
        self._refresh((conn.name,))

    def remove(self, name: str) -> None:
        old = self._conns.pop(name, None)
        if old is not None:
            self._unbind(old)
            self._refresh((name,))

    def set_global_priority(self, priority: GlobalDnsPriority) -> None:
        if priority != self._global:
            self._global = priority
            self._refresh(list(self._conns))

    def update_state(self, state: NetState) -> None:
        old, self._state = self._state, state
        touched = _touched_links(old, state)
        self._refresh({conn for name in touched for conn in self._on_interface.get(name, ())})

    # -- keeping the order ---------------------------------------------------------

    def _unbind(self, conn: DnsConnection) -> None:
        bound = self._on_interface[conn.interface_name]
        bound.discard(conn.name)
        if not bound:
            del self._on_interface[conn.interface_name]

    def _refresh(self, names: Collection[str]) -> None:
        """Place the entries of `names` again; correct the merge where they list items."""
        self._result = None
        if self._journal is not None:
            self._journal.update(names)
            if len(self._journal) > len(self._conns):
                self._journal = None  # names that come and go: "all" is cheaper to keep
        left: list[Candidate] = []
        entered: list[Candidate] = []
        for name in names:
            left += self._withdraw_connection(name)
            entered += self._place_connection(name)
        lowest = self._by_key[self._keys[0]] if self._keys else None
        exclusion = lowest if lowest is not None and lowest.priority < 0 else None
        if _exclusion_of(exclusion) != _exclusion_of(self._exclusion):
            self._exclusion = exclusion
            self._rebuild()
            return
        self._exclusion = exclusion  # the same rule, maybe from a new value of that entry
        moved: set[Key] = set()
        for cand in left:
            if self._used(cand):
                moved |= self._withdraw(cand)
        for cand in entered:
            if self._used(cand):
                moved |= self._enter(cand)
        for cand in entered:
            self._set_entry(cand)
        for key in moved:
            if key in self._by_key:
                self._set_entry(self._by_key[key])

    def _withdraw_connection(self, name: str) -> list[Candidate]:
        """Take the connection's entries out of the order; its candidates, still merged."""
        left = self._active.pop(name, [])
        for cand in left:
            key = cand.sort_key()
            at = bisect_left(self._keys, key)
            del self._keys[at]
            del self._entry_at[at]
            del self._by_key[key]
        for inactive_key in self._inactive.pop(name, ()):
            at = bisect_left(self._inactive_keys, inactive_key)
            del self._inactive_keys[at]
            del self._inactive_at[at]
        return left

    def _place_connection(self, name: str) -> list[Candidate]:
        """File the connection's entries in the order; its candidates, not merged yet."""
        conn = self._conns.get(name)
        if conn is None:
            return []
        active, inactive = candidates_of(conn, self._state, self._global)
        for cand in active:
            key = cand.sort_key()
            at = bisect_left(self._keys, key)
            self._keys.insert(at, key)
            self._entry_at.insert(at, _UNSET)  # set once the merge knows its servers
            self._by_key[key] = cand
        filed = []
        for entry in inactive:
            inactive_key = (conn.created_seq, conn.name, entry.family.value)
            at = bisect_left(self._inactive_keys, inactive_key)
            self._inactive_keys.insert(at, inactive_key)
            self._inactive_at.insert(at, entry)
            filed.append(inactive_key)
        self._active[name] = active
        self._inactive[name] = filed
        return active

    def _rebuild(self) -> None:
        self._journal = None
        self._servers, self._searches, self._options = _FirstWins(), _FirstWins(), _FirstWins()
        self._with_servers = self._with_trust_ad = 0
        for key in self._keys:
            cand = self._by_key[key]
            if self._used(cand):
                self._enter(cand)
        self._entry_at = [self._entry(self._by_key[key]) for key in self._keys]

    def _set_entry(self, cand: Candidate) -> None:
        self._entry_at[bisect_left(self._keys, cand.sort_key())] = self._entry(cand)

    def _used(self, cand: Candidate) -> bool:
        excluded = self._exclusion is not None and cand.priority != self._exclusion.priority
        return not excluded and cand.config.has_dns_data

    def _items(self, cand: Candidate) -> tuple[list[tuple[str, str]], ...]:
        servers = [(text, text) for text in _server_texts(cand)]
        searches = [(domain, domain) for domain in cand.config.search if domain[:1] != "~"]
        options = [(option_name(o), o) for o in cand.config.options if o != TRUST_AD]
        return servers, searches, options

    def _enter(self, cand: Candidate) -> set[Key]:
        key = cand.sort_key()
        servers, searches, options = self._items(cand)
        self._searches.add(key, searches)
        self._options.add(key, options)
        if cand.config.servers:
            self._with_servers += 1
            self._with_trust_ad += TRUST_AD in cand.config.options
        return self._servers.add(key, servers)

    def _withdraw(self, cand: Candidate) -> set[Key]:
        key = cand.sort_key()
        servers, searches, options = self._items(cand)
        self._searches.remove(key, searches)
        self._options.remove(key, options)
        if cand.config.servers:
            self._with_servers -= 1
            self._with_trust_ad -= TRUST_AD in cand.config.options
        return self._servers.remove(key, servers)

    def _entry(self, cand: Candidate) -> DnsEntry:
        if self._exclusion is not None and cand.priority != self._exclusion.priority:
            return cand.entry(Status.EXCLUDED, excluded_reason(self._exclusion), (), ())
        if not cand.config.has_dns_data:
            return cand.entry(Status.NO_DNS_DATA, no_dns_data_reason(cand), (), ())
        key = cand.sort_key()
        new: list[str] = []
        duplicates: list[str] = []
        for index, text in enumerate(_server_texts(cand)):
            (new if self._servers.first(text) == (key, index, text) else duplicates).append(text)
        return cand.entry(Status.USED, cand.rank_reason, tuple(new), tuple(duplicates))


def _exclusion_of(lowest: Candidate | None) -> tuple[int, str, Family] | None:
    """What the excluded entries' status and reason say of the lowest entry."""
    return (lowest.priority, lowest.conn.name, lowest.family) if lowest is not None else None


def _touched_links(old: NetState, new: NetState) -> set[str]:
    """Names of the links whose entries may read differently in `new`.

    A link that appeared, went, was renamed or changed state, and the holders of the best
    default route of either family before and after, when it moved or its metric changed.
    """
    names: set[str] = set()
    if new.links is not old.links:  # the reducers share the dict when no link changed
        for ifindex in old.links.keys() | new.links.keys():
            before, after = old.links.get(ifindex), new.links.get(ifindex)
            if before is not after and before != after:
                names.update(link.name for link in (before, after) if link is not None)
    for family in Family:
        routes = old.best_default_route(family), new.best_default_route(family)
        if _holder(routes[0]) == _holder(routes[1]):
            continue
        for route in routes:
            if route is not None:
                holders = (old.links.get(route.ifindex), new.links.get(route.ifindex))
                names.update(link.name for link in holders if link is not None)
    return names
