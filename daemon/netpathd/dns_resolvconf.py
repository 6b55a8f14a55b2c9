"""resolvconf records as DNS connections: ``-a KEY`` sets one, ``-d KEY`` removes it.

The language (key, text, flags) is `model.resolvconf`; this module only binds a record
to the current links and hands the connection to the DNS manager as a runtime
connection of the source ``resolvconf``, so a restart forgets records, as a reboot
empties openresolv's and Debian's ``/run/resolvconf``.
"""

from __future__ import annotations

import dataclasses

from netpathd.dns_manager import DnsManager
from netpathd.errors import InvalidArgument, NotFound
from netpathd.kernel.ifindex import link_exists
from netpathd.model import resolvconf
from netpathd.model.dns import DnsConnection
from netpathd.model.dns_settings import PRIORITY_MAX, merge_settings


def record_connection(
    dns: DnsManager, key: str, text: str, flags: resolvconf.Flags
) -> DnsConnection:
    """The connection a record makes; InvalidArgument (naming the line) if none."""
    name = resolvconf.connection_name(key)
    if not 0 <= flags.metric <= PRIORITY_MAX:
        raise InvalidArgument(f"metric {flags.metric}: must be 0-{PRIORITY_MAX}")
    parsed = resolvconf.parse_text(text)
    interface = resolvconf.interface_of(
        key, lambda name: dns.link_exists(name) or link_exists(name)
    )
    existing = dns.sourced(name)
    seq = existing.created_seq if existing is not None else dns.next_seq()
    values = resolvconf.settings(parsed, interface, flags, dns.link_kind(interface))
    conn = merge_settings(None, name, values, created_seq=seq)
    return dataclasses.replace(conn, metric=flags.metric)


def add_record(dns: DnsManager, conn: DnsConnection) -> None:
    dns.set_sourced(conn, resolvconf.SOURCE)


def check_record(dns: DnsManager, key: str) -> None:
    """NotFound unless the record exists (asked before polkit, as every lookup is)."""
    if dns.sourced(resolvconf.connection_name(key)) is None:
        raise NotFound(f"no resolvconf record {key!r}")


def remove_record(dns: DnsManager, key: str) -> None:
    if not dns.remove_sourced(resolvconf.connection_name(key)):
        raise NotFound(f"no resolvconf record {key!r}")
