"""Authoritative stand-in DNS servers, each in its own namespace, for split-DNS tests.

As measured in ../shared/real-components.md: one dnsmasq per server namespace answers every
name with its own address (so an answer says which link served the query) and logs every
query (so the log proves which names reached it).  A veth link joins it to the client.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.netns import Netns, netns, veth

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DIG_TIMEOUT = "+time=2"


@dataclass
class StandIn:
    """A server at ``address`` on the client's link ``link``."""

    ns: Netns
    address: str
    link: str
    log: Path

    def queried(self) -> list[str]:
        """Every name that reached this server, in order."""
        if not self.log.exists():
            return []
        names = []
        for line in self.log.read_text().splitlines():
            words = line.split()
            if "query[A]" in words:
                names.append(words[words.index("query[A]") + 1])
        return names


@contextmanager
def stand_in(client: Netns, link: str, network: str, tmp: Path) -> Iterator[StandIn]:
    """A server namespace on ``network``.0/24: the client gets .2 on ``link``, the server .53."""
    with ExitStack() as stack:
        server = stack.enter_context(netns("nd"))
        veth(client, link, server, "up0")
        client.ip("address", "add", f"{network}.2/24", "dev", link)
        address = f"{network}.53"
        server.ip("address", "add", f"{address}/24", "dev", "up0")
        log = tmp / f"queries-{link}.log"
        process = subprocess.Popen(
            server.exec_argv(
                DNSMASQ,
                "--conf-file=/dev/null",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                f"--listen-address={address}",
                "--bind-interfaces",
                f"--address=/#/{address}",
                "--log-queries",
                f"--log-facility={log}",
                "--pid-file=",
                "--user=root",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stack.callback(_stop, process)
        _wait_answering(server, address)
        log.write_text("")  # forget the readiness probe
        yield StandIn(server, address, link, log)


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)


def _wait_answering(ns: Netns, address: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while dig(ns, address, "ready.probe") != address:
        assert time.monotonic() < deadline, f"stand-in server {address} never answered"


def dig(ns: Netns, server: str, name: str) -> str | None:
    """The first A record of ``name`` from ``server`` (queried inside ``ns``), None if none."""
    result = ns.exec("dig", f"@{server}", name, "A", "+short", DIG_TIMEOUT, "+tries=1", check=False)
    lines = [line for line in result.stdout.splitlines() if line and line[0].isdigit()]
    return lines[0] if result.returncode == 0 and lines else None
