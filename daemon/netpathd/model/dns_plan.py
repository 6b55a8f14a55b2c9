"""What a DNS change produces for the back-end of the mode: the plan and the resolver file.

Every mode needs this part; the domain routes and per-link view that only the routing modes
(dns=dnsmasq, dns=systemd-resolved) and ExplainDomains read are `model.split_dns`, loaded with
the first routed plan, so that a daemon with dns=default never builds their classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from netpathd.model.dns import DnsResult

if TYPE_CHECKING:
    from netpathd.model.split_dns import DomainRoute, LinkDns

DEFAULT_DOMAIN = "."
DNSMASQ_ADDRESS = "127.0.0.1"
RESOLVED_STUB_ADDRESS = "127.0.0.53"
RESOLVED_STUB_OPTIONS = ("edns0", "trust-ad")  # what resolved's own stub-resolv.conf says


class DnsMode(Enum):
    """NetworkManager.conf's `[main] dns` values that netpathd knows."""

    DEFAULT = "default"  # ordered servers in the resolver file
    DNSMASQ = "dnsmasq"
    SYSTEMD_RESOLVED = "systemd-resolved"
    NONE = "none"  # compute everything, push and write nothing


@dataclass(frozen=True, slots=True)
class ResolverFile:
    """What the resolver file lists: the ordered servers, or the local resolver of the mode."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsPlan:
    """Everything one state asks of a back-end; `routes` and `links` only for those that route."""

    mode: DnsMode = DnsMode.DEFAULT
    order: DnsResult = field(default_factory=DnsResult)
    routes: tuple[DomainRoute, ...] = ()  # sorted by domain, "." first
    links: tuple[LinkDns, ...] = ()  # sorted by ifindex
    resolver: ResolverFile = field(default_factory=ResolverFile)

    @property
    def default_route(self) -> DomainRoute | None:
        return next((route for route in self.routes if route.domain == DEFAULT_DOMAIN), None)


def resolver_file(
    nameservers: tuple[str, ...], searches: tuple[str, ...], options: tuple[str, ...], mode: DnsMode
) -> ResolverFile:
    """What the resolver file says in `mode`, given the merged order."""
    if mode is DnsMode.DNSMASQ:
        # dnsmasq does not apply search domains: the file keeps them (nm-dns-dnsmasq.c).
        return ResolverFile((DNSMASQ_ADDRESS,), searches, options)
    if mode is DnsMode.SYSTEMD_RESOLVED:
        return ResolverFile((RESOLVED_STUB_ADDRESS,), searches, RESOLVED_STUB_OPTIONS)
    return ResolverFile(nameservers, searches, options)
