"""Endpoints bound to an interface follow it by name: deleted, re-created, renamed.

The kernel keeps an endpoint on the ifindex it was bound to when that link is
deleted (6.18: ``ip mptcp endpoint show`` prints ``dev if3``) and refuses the
same address again; netpathd must take the endpoint out and put it back on
the new link of that name.  ``ip mptcp`` in the namespace is the witness;
PropertiesChanged is awaited, never slept for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_mptcp_bus import connected, endpoints
from tests.support.bus import PrivateBus
from tests.support.daemon import running_daemon
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


def add_link(ns: Netns, name: str) -> None:
    ns.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    ns.ip("link", "set", name, "up")


def ifindex(ns: Netns, name: str) -> int:
    return int(ns.exec("cat", f"/sys/class/net/{name}/ifindex").stdout)


def shown(ns: Netns) -> list[str]:
    return sorted(line.strip() for line in endpoints(ns).splitlines())


async def test_endpoints_follow_their_link_out_and_back_by_name(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    add_link(ns, "e1")
    add_link(ns, "e2")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mptcp.conf").write_text(
        '[endpoint "192.0.2.2"]\nflags = subflow\ninterface = e1\n'
    )
    with running_daemon(ns, bus, tmp_path):
        async with connected(bus) as client:
            await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["signal"], "e1", 0, 7])
            await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.3", [], "e1", 0, 0])
            ns.ip("mptcp", "endpoint", "add", "203.0.113.9", "id", "9", "dev", "e2", "subflow")
            assert len(shown(ns)) == 4
            old_ifindex = ifindex(ns, "e1")
            client.drain()

            ns.ip("link", "del", "e1")
            foreign = [9, "203.0.113.9", 0, "e2", ["subflow"]]
            assert await client.wait_changed("Endpoints") == [foreign]
            assert shown(ns) == ["203.0.113.9 id 9 subflow dev e2"]

            ns.ip("link", "del", "e2")  # someone else's endpoint stays as the kernel keeps it
            add_link(ns, "e1")
            assert ifindex(ns, "e1") != old_ifindex
            table = await client.wait_changed("Endpoints")
            assert sorted((e[1], e[3]) for e in table) == [
                ("192.0.2.1", "e1"), ("192.0.2.2", "e1"), ("192.0.2.3", "e1"), ("203.0.113.9", ""),
            ]  # fmt: skip
            lines = shown(ns)
            assert lines[0] == "192.0.2.1 id 7 signal dev e1"
            assert lines[1].startswith("192.0.2.2 id ") and lines[1].endswith(" subflow dev e1")
            assert lines[2].startswith("192.0.2.3 id ") and lines[2].endswith(" dev e1")
            assert lines[3].startswith("203.0.113.9 id 9 subflow dev if")

            ns.ip("link", "set", "e1", "name", "e3")  # the name is the binding: out again
            table = await client.wait_changed("Endpoints")
            assert [e[1] for e in table] == ["203.0.113.9"]
            ns.ip("link", "set", "e3", "name", "e1")
            table = await client.wait_changed("Endpoints")
            assert len(table) == 4
            assert all(line.endswith(" dev e1") for line in shown(ns)[:3])


async def test_a_link_recreated_while_netpathd_was_down_gets_its_endpoint_back(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    add_link(ns, "e1")
    with running_daemon(ns, bus, tmp_path):
        async with connected(bus) as client:
            await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["subflow"], "e1", 0, 0])
    ns.ip("link", "del", "e1")
    with running_daemon(ns, bus, tmp_path):  # no link of that name: it waits for one
        assert endpoints(ns) == ""
        async with connected(bus) as client:
            add_link(ns, "e1")
            await client.wait_changed("Endpoints")
        assert endpoints(ns) == "192.0.2.1 id 1 subflow dev e1 \n"
