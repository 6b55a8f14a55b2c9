"""Addresses no endpoint and no DNS server can ever use, refused before anything changes.

The kernel takes most of them without a word (an MPTCP endpoint on 224.0.0.1 is
accepted and never carries a subflow; glibc sends queries to 255.255.255.255 and
waits for its timeout), so the refusal has to come from here.  A v4-mapped IPv6
address names an IPv4 host through the IPv6 API: the kernel treats the endpoint
as the IPv4 one (a duplicate is EEXIST), and resolv.conf wants the IPv4 form.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def unusable_address_problem(address: IPAddress) -> str | None:
    """Why ``address`` cannot be a local endpoint or a server to query, or None."""
    if address.is_unspecified:
        return "is the unspecified address"
    if address == LIMITED_BROADCAST:
        return "is the broadcast address"
    if address.is_multicast:
        return "is a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"is an IPv4-mapped IPv6 address (use {address.ipv4_mapped})"
    return None
