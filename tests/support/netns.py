"""Throw-away network namespaces for integration tests.

Names are unique per process and test (``np<pid>x<n>``) so parallel sessions and
tests never collide; everything is deleted afterwards, even when a test fails.
Only documentation prefixes (RFC 5737 / RFC 3849) are ever configured.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_counter = itertools.count()


def unique_name(prefix: str = "np") -> str:
    """A short name that fits IFNAMSIZ (15) when used for links too."""
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


@dataclass
class Netns:
    """One network namespace; ``ip(...)`` and ``exec(...)`` run inside it."""

    name: str
    links: list[str] = field(default_factory=list)

    def exec_argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.exec_argv(*argv), check=check)

    def ip(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.name, *argv, check=check)

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-q", "-w", f"{key}={value}")

    def up_loopback(self) -> None:
        self.ip("link", "set", "lo", "up")


def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
    """A veth pair with one end in each namespace, both up."""
    tmp_a, tmp_b = unique_name("va"), unique_name("vb")
    run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    run("ip", "link", "set", tmp_a, "netns", a.name, "name", a_name)
    run("ip", "link", "set", tmp_b, "netns", b.name, "name", b_name)
    a.ip("link", "set", a_name, "up")
    b.ip("link", "set", b_name, "up")


@contextmanager
def netns(prefix: str = "np") -> Iterator[Netns]:
    ns = Netns(unique_name(prefix))
    run("ip", "netns", "add", ns.name)
    try:
        ns.up_loopback()
        yield ns
    finally:
        run("ip", "netns", "del", ns.name, check=False)


def guide_paths(server: Netns, client: Netns) -> None:
    """The Red Hat guide's two paths: s1-c1 on 192.0.2.0/24, s2-c2 on 198.51.100.0/24.

    The server holds .1 and the client .2 of each network.
    """
    for index, network in ((1, "192.0.2"), (2, "198.51.100")):
        veth(server, f"s{index}", client, f"c{index}")
        server.ip("address", "add", f"{network}.1/24", "dev", f"s{index}")
        client.ip("address", "add", f"{network}.2/24", "dev", f"c{index}")
