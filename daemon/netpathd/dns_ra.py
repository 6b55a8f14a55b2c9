"""RA-learned DNS (RFC 8106) as one runtime connection per link, ``ra:IFNAME``.

Each server and domain has one timer for its expiry, moved by every RA that lists
it again, cancelled by a withdrawal (lifetime 0): nothing wakes up to poll.  Whether
a link's servers are used is `RaPolicy` (``[ra]`` of netpathd.conf); the items are
kept either way, so switching the policy on takes effect without waiting for an RA.

The parser and the table (`model.ra_dns`) load with the first RA that reaches the daemon:
many hosts never see one, and every start would pay for them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from netpathd.dns_manager import DnsManager
from netpathd.errors import InvalidArgument, NetpathdError
from netpathd.model.dns_settings import merge_settings
from netpathd.model.dns_sources import RA_PREFIX
from netpathd.model.links import NetState
from netpathd.model.ra_policy import RaPolicy

if TYPE_CHECKING:
    from netpathd.model.ra_dns import Item, RaDnsTable

log = logging.getLogger(__name__)


class RaDns:
    def __init__(self, dns: DnsManager, policy: RaPolicy) -> None:
        self._dns = dns
        self._policy = policy
        self._table: RaDnsTable | None = None  # with the first RA (module docstring)
        self._timers: dict[Item, asyncio.TimerHandle] = {}
        self._names: dict[int, str] = {}  # ifindex -> link name, from the network state
        self._published: dict[int, str] = {}  # ifindex -> connection name in the DNS manager

    def on_options(self, ifindex: int, data: bytes) -> None:
        """One RA's options (from `kernel.nd_useropt`): learn, reschedule, publish."""
        from netpathd.model import ra_dns  # noqa: PLC0415 - see the module docstring

        if self._table is None:
            self._table = ra_dns.RaDnsTable()
        loop = asyncio.get_running_loop()
        now = loop.time()
        changed = False
        for option in ra_dns.parse_options(data):
            if isinstance(option, ra_dns.Malformed):
                log.warning("RA on ifindex %d: %s; option skipped", ifindex, option.reason)
                continue
            for item, deadline in self._table.learn(ifindex, option, now):
                changed = True
                if (timer := self._timers.pop(item, None)) is not None:
                    timer.cancel()
                if deadline is not None and deadline != math.inf:
                    self._timers[item] = loop.call_at(deadline, self._expire, item)
        if changed:
            self._publish(ifindex)

    def _expire(self, item: Item) -> None:
        self._timers.pop(item, None)
        if self._table is not None and self._table.expire(item):
            log.info("RA %s %s on ifindex %d expired", item[1].value, item[2], item[0])
            self._publish(item[0])

    def network_changed(self, state: NetState) -> None:
        """Links renamed or gone: follow the name, or forget what the link had learned."""
        names = {link.ifindex: link.name for link in state.links.values()}
        table = self._table
        for ifindex in set(self._names) | self._learned():
            if ifindex not in names and table is not None:
                for item in table.forget(ifindex):
                    if (timer := self._timers.pop(item, None)) is not None:
                        timer.cancel()
        old, self._names = self._names, names
        for ifindex in set(self._published) | self._learned():
            if old.get(ifindex) != names.get(ifindex) or ifindex not in names:
                self._publish(ifindex)

    def set_policy(self, policy: RaPolicy) -> None:
        self._policy = policy
        for ifindex in set(self._published) | self._learned():
            self._publish(ifindex)

    def _learned(self) -> set[int]:
        """The links the table holds items for (none before the first RA)."""
        return set(self._table.links) if self._table is not None else set()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _publish(self, ifindex: int) -> None:
        try:
            self._update_connection(ifindex)
        except NetpathdError as error:  # a failed write: the next change writes again
            log.error("RA DNS update failed: %s", error.message)

    def _update_connection(self, ifindex: int) -> None:
        """Make ``ra:IFNAME`` say what the table holds for the link (or remove it)."""
        name = self._names.get(ifindex)
        servers, domains = self._items(ifindex)
        wanted = name is not None and (servers or domains) and self._policy.uses_dns(name)
        old = self._published.pop(ifindex, None)
        if old is not None and (not wanted or old != RA_PREFIX + str(name)):
            self._dns.remove_sourced(old)
        if not wanted or name is None:
            return
        from netpathd.model import ra_dns  # noqa: PLC0415 - loaded: the table has items

        connection = RA_PREFIX + name
        existing = self._dns.sourced(connection)
        seq = existing.created_seq if existing is not None else self._dns.next_seq()
        settings = ra_dns.connection_settings(name, servers, domains)
        try:
            conn = merge_settings(None, connection, settings, created_seq=seq)
        except InvalidArgument as error:  # e.g. more servers than a connection takes
            log.warning("RA DNS on %s not used: %s", name, error.message)
            self._dns.remove_sourced(connection)
            return
        self._published[ifindex] = connection
        self._dns.set_sourced(conn, ra_dns.SOURCE)

    def _items(self, ifindex: int) -> tuple[list[str], list[str]]:
        """The link's servers and domains, in RA order."""
        if self._table is None:
            return [], []
        from netpathd.model.ra_dns import Kind  # noqa: PLC0415 - loaded with the table

        return self._table.values(ifindex, Kind.SERVER), self._table.values(ifindex, Kind.DOMAIN)
