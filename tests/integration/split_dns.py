"""The issue's split-DNS scenario, shared by the dnsmasq and systemd-resolved tests.

A VPN-like connection `corp` on corp0 (server 198.51.100.53, `~corp.example`) and an
ethernet-like `wan` on wan0 (server 203.0.113.53, the default route).  Each stand-in answers
every name with its own address, and its query log proves which names reached it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbus_fast import Variant

from tests.support.dbus_client import BusClient
from tests.support.dns_servers import StandIn, dig, stand_in
from tests.support.netns import Netns

DNS = "org.netpathd1.Dns"
ROUTE_TIMEOUT = 30.0  # generous: the machine is shared and loaded
_probes = itertools.count()


@dataclass
class SplitDns:
    client_ns: Netns
    resolver: str  # 127.0.0.1 or 127.0.0.53
    corp: StandIn
    wan: StandIn

    def ask(self, name: str) -> str | None:
        return dig(self.client_ns, self.resolver, name)

    def wait_route(self, domain: str, server: StandIn, timeout: float = ROUTE_TIMEOUT) -> float:
        """Probe fresh names under ``domain`` until ``server`` answers; seconds it took."""
        start = time.monotonic()
        while True:
            name = f"probe{next(_probes)}.{domain}"
            if self.ask(name) == server.address:
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{domain} never reached {server.link}"

    def only(self, name: str, server: StandIn) -> None:
        """``name`` is answered by ``server``, and its query reached no other."""
        assert self.ask(name) == server.address
        other = self.wan if server is self.corp else self.corp
        assert name in server.queried()
        assert name not in other.queried(), f"{name} also reached {other.link}"


def default_route(ns: Netns, link: str, gateway: str, metric: int) -> None:
    ns.ip("route", "replace", "default", "via", gateway, "dev", link, "metric", str(metric))


@contextmanager
def split_dns(ns: Netns, workdir: Path, resolver: str) -> Iterator[SplitDns]:
    """Both stand-ins up, wan0 the default route, queries sent to ``resolver``."""
    with (
        stand_in(ns, "corp0", "198.51.100", workdir) as corp,
        stand_in(ns, "wan0", "203.0.113", workdir) as wan,
    ):
        default_route(ns, "wan0", "203.0.113.53", 100)
        yield SplitDns(ns, resolver, corp, wan)


async def wait_state(client: BusClient, wanted: str) -> None:
    if await client.get(DNS, "BackendState") != wanted:
        await client.wait_change(DNS, "BackendState", wanted)


async def set_settings(client: BusClient, name: str, settings: dict[str, Any]) -> None:
    signatures = {int: "i", list: "as", str: "s"}
    body = {key: Variant(signatures[type(value)], value) for key, value in settings.items()}
    await client.call(DNS, "SetConnection", "sa{sv}", [name, body])


CONNECTIONS = """\
[connection "corp"]
connection.interface-name = corp0
connection.type = vpn
ipv4.dns = 198.51.100.53
ipv4.dns-search = ~corp.example

[connection "wan"]
connection.interface-name = wan0
connection.type = ethernet
ipv4.dns = 203.0.113.53
"""


def prepare(workdir: Path, mode: str) -> None:
    """The mode, and both connections as if set over D-Bus before: the first push has them."""
    for sub in ("config", "state"):
        (workdir / sub).mkdir(exist_ok=True)
    (workdir / "config" / "netpathd.conf").write_text(f"[main]\ndns = {mode}\n")
    (workdir / "state" / "dns.conf").write_text(CONNECTIONS)


async def run_scenario(split: SplitDns, client: BusClient, ns: Netns) -> None:
    """The issue's list, in order; each step waits for its own outcome."""
    split.wait_route("corp.example", split.corp)
    split.wait_route("example.org", split.wan)
    split.only("host.corp.example", split.corp)
    split.only("example.org", split.wan)

    # The same domain on two connections: the lower dns-priority value only.
    shared = {"ipv4.dns-search": ["~corp.example"], "ipv4.dns-priority": 10}
    await set_settings(client, "wan", shared)
    split.wait_route("corp.example", split.wan)
    split.only("two.corp.example", split.wan)

    # A negative priority takes everything.
    await set_settings(client, "wan", {"ipv4.dns-search": [], "ipv4.dns-priority": 0})
    await set_settings(client, "corp", {"ipv4.dns-priority": -5})
    split.wait_route("example.org", split.corp)
    split.only("everything.example.net", split.corp)
    await set_settings(client, "corp", {"ipv4.dns-priority": 0})
    split.wait_route("example.org", split.wan)

    # The default route moving to the other link moves the default queries.
    default_route(ns, "corp0", "198.51.100.53", 50)
    split.wait_route("example.org", split.corp)
    split.only("moved.example.org", split.corp)
    ns.ip("route", "del", "default", "dev", "corp0")
    split.wait_route("example.org", split.wan)

    # The connection going away: its domain falls back to the default route's servers.
    await client.call(DNS, "RemoveConnection", "s", ["corp"])
    split.wait_route("corp.example", split.wan)
    split.only("after.corp.example", split.wan)
