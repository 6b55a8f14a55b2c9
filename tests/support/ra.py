"""IPv6 router advertisements with RDNSS and DNSSL options (RFC 8106), sent for real.

A raw ICMPv6 socket in the router's namespace: the kernel fills in the checksum, the
hop limit is 255 and the source a link-local address, as ndisc_rcv() requires.
"""

from __future__ import annotations

import ipaddress
import struct
import sys

from tests.support.netns import Netns

ROUTER_ADDRESS = "fe80::1"

# Runs inside the router's namespace: IFNAME HEX-PACKET
SENDER = """
import socket, sys
ifname, packet = sys.argv[1], bytes.fromhex(sys.argv[2])
index = socket.if_nametoindex(ifname)
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
sock.bind(("fe80::1", 0, 0, index))
sock.sendto(packet, ("ff02::1", 0, 0, index))
"""


def rdnss(servers: list[str], lifetime: int) -> bytes:
    addresses = b"".join(ipaddress.IPv6Address(server).packed for server in servers)
    return struct.pack("!BBHI", 25, 1 + 2 * len(servers), 0, lifetime) + addresses


def dnssl(domains: list[str], lifetime: int) -> bytes:
    encoded = b"".join(
        b"".join(bytes([len(label)]) + label.encode() for label in domain.split(".")) + b"\0"
        for domain in domains
    )
    encoded += b"\0" * (-(8 + len(encoded)) % 8)
    return struct.pack("!BBHI", 31, (8 + len(encoded)) // 8, 0, lifetime) + encoded


def advertisement(*options: bytes) -> bytes:
    """An RA that is not a default router (lifetime 0): only its options matter here."""
    return struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0) + b"".join(options)


def prepare(host: Netns, router: Netns) -> None:
    """Before the veth exists: no DAD (no tentative delay), RAs accepted by the host."""
    for ns in (host, router):
        for scope in ("all", "default"):
            ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", "0")
            ns.sysctl(f"net.ipv6.conf.{scope}.forwarding", "0")
    host.sysctl("net.ipv6.conf.default.accept_ra", "1")


def send(router: Netns, router_link: str, packet: bytes) -> None:
    router.exec(sys.executable, "-c", SENDER, router_link, packet.hex())
