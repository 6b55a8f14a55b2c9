"""org.netpathd1.Mptcp on a real bus, against the real kernel of a throw-away namespace.

Each daemon runs under ``ip netns exec`` and owns org.netpathd1 on a private
bus of its own; tests drive it through D-Bus only (dbus-fast and busctl) and
use ``ip mptcp`` in the namespace as the independent witness.  Events and
PropertiesChanged are awaited with timeouts, never slept for.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Variant

from tests.integration.test_mptcp_kernel import CLIENT, SERVER, read_line, start, stop
from tests.support.bus import PrivateBus, private_bus
from tests.support.daemon import Daemon, running_daemon, start_daemon
from tests.support.dbus_client import BusClient, CallError, bus_client
from tests.support.netns import Netns, guide_paths, netns

pytestmark = pytest.mark.integration

MPTCP = "org.netpathd1.Mptcp"
OBJECT = ("org.netpathd1", "/org/netpathd1", MPTCP)


class Client:
    """org.netpathd1.Mptcp of one daemon, through the shared test client."""

    def __init__(self, client: BusClient) -> None:
        self.client = client

    async def call(
        self, member: str, signature: str = "", body: list[Any] | None = None
    ) -> list[Any]:
        return await self.client.call(MPTCP, member, signature, body)

    async def get(self, name: str) -> Any:
        return await self.client.get(MPTCP, name)

    async def set(self, name: str, value: Variant) -> None:
        await self.client.set(MPTCP, name, value)

    def drain(self) -> None:
        self.client.drain()

    async def wait_signal(self, member: str) -> list[Any]:
        return await self.client.next_signal(member)

    async def wait_changed(self, name: str) -> Any:
        """The next PropertiesChanged of org.netpathd1.Mptcp that carries ``name``."""
        value = await self.client.next_change(MPTCP, name)
        # structs arrive as tuples: lists compare more readably in asserts
        return [list(item) for item in value] if name == "Endpoints" else value


@asynccontextmanager
async def connected(bus: PrivateBus) -> AsyncIterator[Client]:
    async with bus_client(bus.address) as client:
        yield Client(client)


def endpoints(ns: Netns) -> str:
    return ns.ip("mptcp", "endpoint", "show").stdout


def limits(ns: Netns) -> str:
    return ns.ip("mptcp", "limits", "show").stdout.strip()


def sysctl_enabled(ns: Netns) -> str:
    return ns.exec("sysctl", "-n", "net.mptcp.enabled").stdout.strip()


IP_MONITOR_KINDS = {
    "CREATED": "created",
    "ESTABLISHED": "established",
    "ANNOUNCED": "announced",
    "SF_ESTABLISHED": "sub_established",
}
PROBE_LISTENER = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); "
    "s.bind(('127.0.0.1', 0)); s.listen()"
)


async def subscribed_monitor(ns: Netns) -> asyncio.subprocess.Process:
    """`ip mptcp monitor`, known to be subscribed: it has printed a listener event."""
    monitor = await start(ns, "ip", "mptcp", "monitor")
    assert monitor.stdout is not None
    for _ in range(50):  # each probe listener makes LISTENER_CREATED/_CLOSED events
        ns.exec(sys.executable, "-c", PROBE_LISTENER)
        try:
            await asyncio.wait_for(monitor.stdout.readline(), 0.2)
        except TimeoutError:
            continue
        return monitor
    await stop(monitor)
    raise AssertionError("ip mptcp monitor printed no event")


async def monitor_events(
    monitor: asyncio.subprocess.Process, until: str
) -> dict[str, dict[str, str]]:
    """The first event of each kind `ip mptcp monitor` printed, as key=value fields."""
    events: dict[str, dict[str, str]] = {}
    while until not in events:
        line = await read_line(monitor)  # "[       CREATED] token=... saddr4=..."
        kind, _, fields = line.removeprefix("[").partition("]")
        pairs = (field.partition("=") for field in fields.split())
        events.setdefault(kind.strip(), {key: value for key, _, value in pairs})
    return events


def ss_subflows(ns: Netns, port: int) -> list[tuple[str, str]]:
    """(local, remote) addresses of the TCP subflows `ss -nti` marks tcp-ulp-mptcp."""
    lines = ns.exec("ss", "-nti", f"( dport = :{port} )").stdout.splitlines()
    paths = []
    for socket_line, info_line in itertools.pairwise(lines):
        fields = socket_line.split()
        if "tcp-ulp-mptcp" in info_line and fields and fields[0] == "ESTAB":
            paths.append((fields[3].rpartition(":")[0], fields[4].rpartition(":")[0]))
    return sorted(paths)


# -- the guide's scenario -------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """One side of the guide's setup: its namespace and the bus its netpathd serves on."""

    ns: Netns
    bus: PrivateBus


@contextmanager
def two_paths_with_daemons(tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    """Server and client joined by 192.0.2.0/24 and 198.51.100.0/24, a netpathd in each."""
    with (
        netns("srv") as server,
        netns("cli") as client,
        private_bus() as server_bus,
        private_bus() as client_bus,
    ):
        guide_paths(server, client)
        (tmp_path / "srv").mkdir()
        (tmp_path / "cli").mkdir()
        with (
            running_daemon(server, server_bus, tmp_path / "srv"),
            running_daemon(client, client_bus, tmp_path / "cli"),
        ):
            yield Host(server, server_bus), Host(client, client_bus)


async def test_guide_scenario_through_dbus(tmp_path: Path) -> None:
    with two_paths_with_daemons(tmp_path) as (server_host, client_host):
        server, client = server_host.ns, client_host.ns
        async with connected(server_host.bus) as srv, connected(client_host.bus) as cli:
            for ns, bus in ((server, srv), (client, cli)):
                await bus.set("Enabled", Variant("b", False))
                assert await bus.wait_changed("Enabled") is False
                assert sysctl_enabled(ns) == "0"
                await bus.set("Enabled", Variant("b", True))
                assert await bus.wait_changed("Enabled") is True
                assert sysctl_enabled(ns) == "1"
            await srv.call("SetLimits", "uu", [1, 0])
            await cli.call("SetLimits", "uu", [1, 1])
            assert await cli.wait_changed("Subflows") == 1
            (new_id,) = await srv.call(
                "AddEndpoint", "sassqu", ["198.51.100.1", ["signal"], "s2", 0, 0]
            )
            assert await srv.wait_changed("Endpoints") == [
                [new_id, "198.51.100.1", 0, "s2", ["signal"]]
            ]
            assert endpoints(server) == f"198.51.100.1 id {new_id} signal dev s2 \n"
            assert limits(server) == "add_addr_accepted 0 subflows 1"
            assert limits(client) == "add_addr_accepted 1 subflows 1"
            assert await cli.get("Subflows") == 1
            assert await cli.get("AddAddrAccepted") == 1

            monitor = await subscribed_monitor(client)
            listener = await start(server, sys.executable, "-c", SERVER)
            connection = None
            try:
                assert await read_line(listener) == "listening"
                connection = await start(client, sys.executable, "-c", CLIENT)
                assert await read_line(connection) == "exchanged"
                seen: dict[str, dict[str, Any]] = {}
                while "sub_established" not in seen:
                    kind, details = await cli.wait_signal("Event")
                    seen.setdefault(kind, {k: v.value for k, v in details.items()})
                assert {"created", "established", "announced"} <= seen.keys()
                token = seen["created"]["token"]
                assert seen["announced"]["daddr4"] == "198.51.100.1"
                sub = seen["sub_established"]
                assert (sub["token"], sub["saddr4"], sub["daddr4"]) == (
                    token, "198.51.100.2", "198.51.100.1",
                )  # fmt: skip
                assert sub["backup"] is False

                (connections,) = await cli.call("GetConnections")
                (conn,) = connections
                assert conn["token"].value == token
                assert conn["remote_address"].value == "192.0.2.1"
                assert conn["extra_subflows"].value == 1
                assert conn["bytes_sent"].value >= 100000
                paths = sorted(
                    (s["local_address"].value, s["remote_address"].value)
                    for s in conn["subflows"].value
                )
                assert paths == [("192.0.2.2", "192.0.2.1"), ("198.51.100.2", "198.51.100.1")]

                # The guide's witnesses agree: ss sees the same subflows, ip mptcp monitor the
                # same events of the same connection.
                assert ss_subflows(client, 4321) == paths
                witnessed = await monitor_events(monitor, until="SF_ESTABLISHED")
                for ip_kind, kind in IP_MONITOR_KINDS.items():
                    assert witnessed[ip_kind]["token"] == f"{seen[kind]['token']:08x}", ip_kind
                assert witnessed["SF_ESTABLISHED"]["daddr4"] == "198.51.100.1"
            finally:
                for proc in (connection, listener, monitor):
                    if proc is not None:
                        await stop(proc)


# -- persistence, drift and runtime-only changes ----------------------------------------------


async def test_restart_restores_without_duplicates(
    eth_ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    ns = eth_ns
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        async with connected(bus) as client:
            await client.call("SetLimits", "uu", [3, 2])
            await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["subflow"], "eth1", 0, 0])
            await client.call(
                "AddEndpoint", "sassqu", ["198.51.100.9", ["signal", "backup"], "", 0, 7]
            )
            await client.set("Enabled", Variant("b", False))
    finally:
        daemon.stop()
    expected = "192.0.2.1 id 1 subflow dev eth1 \n198.51.100.9 id 7 signal backup \n"
    assert endpoints(ns) == expected
    with running_daemon(ns, bus, tmp_path):  # the kernel still has it all: nothing doubles
        assert endpoints(ns) == expected
        assert limits(ns) == "add_addr_accepted 2 subflows 3"
    ns.ip("mptcp", "endpoint", "flush")
    ns.ip("mptcp", "limits", "set", "subflows", "0", "add_addr_accepted", "0")
    ns.sysctl("net.mptcp.enabled", "1")
    with running_daemon(ns, bus, tmp_path):  # a fresh kernel gets everything back
        shown = sorted(endpoints(ns).splitlines())
        assert shown[0].startswith("192.0.2.1 id ")
        assert shown[0].endswith(" subflow dev eth1 ")
        assert shown[1] == "198.51.100.9 id 7 signal backup "
        assert limits(ns) == "add_addr_accepted 2 subflows 3"
        assert sysctl_enabled(ns) == "0"


async def test_flush_behind_our_back_shows_and_reload_repairs(
    daemon: Daemon, ns: Netns, bus: PrivateBus
) -> None:
    async with connected(bus) as client:
        await client.call("AddEndpoint", "sassqu", ["192.0.2.5", ["subflow", "fullmesh"], "", 0, 4])
        await client.call("AddEndpoint", "sassqu", ["192.0.2.6", ["subflow"], "", 0, 0])
        ns.ip("mptcp", "endpoint", "flush")
        assert bus.busctl("get-property", *OBJECT, "Endpoints").strip() == "a(usqsas) 0"
        ns.ip("mptcp", "endpoint", "add", "203.0.113.7", "id", "20", "signal")  # not ours
        client.drain()
        await client.client.call("org.netpathd1.Manager", "Reload")
        changed = await client.wait_changed("Endpoints")
        assert sorted(e[1] for e in changed) == ["192.0.2.5", "192.0.2.6", "203.0.113.7"]
        assert "192.0.2.5 id 4 subflow fullmesh \n" in endpoints(ns)
        assert "203.0.113.7 id 20 signal \n" in endpoints(ns)
        ns.ip("mptcp", "endpoint", "change", "id", "4", "backup")  # drops fullmesh
        await client.client.call("org.netpathd1.Manager", "Reload")
        assert "192.0.2.5 id 4 subflow fullmesh \n" in endpoints(ns)


async def test_runtime_changes_vanish_at_restart(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    with running_daemon(ns, bus, tmp_path):
        async with connected(bus) as client:
            await client.call("AddEndpoint", "sassqu", ["192.0.2.5", ["subflow"], "", 0, 0])
            state = (tmp_path / "state" / "mptcp.conf").read_bytes()
            await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.6", ["signal"], "", 0, 9])
            await client.call("SetLimitsRuntime", "uu", [5, 5])
            await client.call("SetEnabledRuntime", "b", [False])
            await client.call("SetEndpointFlags", "uas", [9, ["backup"]])
            assert endpoints(ns) == "192.0.2.5 id 1 subflow \n192.0.2.6 id 9 signal backup \n"
            assert limits(ns) == "add_addr_accepted 5 subflows 5"
            assert sysctl_enabled(ns) == "0"
            assert (tmp_path / "state" / "mptcp.conf").read_bytes() == state
            await client.client.call("org.netpathd1.Manager", "Reload")  # survives reload
            assert limits(ns) == "add_addr_accepted 5 subflows 5"
            assert "192.0.2.6" in endpoints(ns)
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == "192.0.2.5 id 1 subflow \n"
        assert limits(ns) == "add_addr_accepted 0 subflows 2"
        assert sysctl_enabled(ns) == "1"


async def test_admin_file_applies_and_bad_reload_keeps_the_last_good(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    config = tmp_path / "config" / "mptcp.conf"
    config.parent.mkdir()
    config.write_text('[mptcp]\nsubflows = 4\n\n[endpoint "192.0.2.8"]\nflags = signal\nid = 8\n')
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == "192.0.2.8 id 8 signal \n"
        assert limits(ns) == "add_addr_accepted 0 subflows 4"
        async with connected(bus) as client:
            with pytest.raises(CallError) as refused:
                await client.call("RemoveEndpoint", "u", [8])
            assert refused.value.name == "org.netpathd1.Error.Failed"
            assert str(config) in refused.value.text
            config.write_text('[mptcp]\nsubflows = 4\n\n[endpoint "192.0.2.8"]\nflags = turbo\n')
            with pytest.raises(CallError) as bad:
                await client.client.call("org.netpathd1.Manager", "Reload")
            assert bad.value.name == "org.netpathd1.Error.InvalidConfiguration"
            assert f"{config}:5: unknown endpoint flag 'turbo'" in bad.value.text
            ns.ip("mptcp", "endpoint", "flush")
            config.write_text('[endpoint "192.0.2.9"]\nflags = subflow\n')
            await client.client.call("org.netpathd1.Manager", "Reload")
            # 192.0.2.8 left the file: netpathd added it, so netpathd takes it away
            assert endpoints(ns) == "192.0.2.9 id 1 subflow \n"


def test_bad_admin_file_at_start_is_logged_and_the_daemon_serves(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    config = tmp_path / "config" / "mptcp.conf"
    config.parent.mkdir()
    config.write_text("[mptcp]\nsubflows = 12\n")
    with running_daemon(ns, bus, tmp_path) as daemon:
        assert bus.busctl("get-property", *OBJECT, "Subflows").strip() == "u 2"
        stderr = daemon.stop()
    assert f"{config}:2: subflows must be between 0 and 8, got 12" in stderr


async def test_a_corrupt_state_file_is_never_saved_over(
    eth_ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "mptcp.conf"
    state.parent.mkdir()
    state.write_text('[endpoint "192.0.2.1"]\nflags = signal\nsurprise = yes\n')
    with running_daemon(eth_ns, bus, tmp_path) as daemon:
        async with connected(bus) as client:
            with pytest.raises(CallError) as refused:
                await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["signal"], "", 0, 0])
            assert refused.value.name == "org.netpathd1.Error.Failed"
            assert f"not saving over {state}" in refused.value.text
            assert endpoints(eth_ns) == ""  # the kernel change was taken back
            assert "surprise" in state.read_text()
            await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.1", ["signal"], "", 0, 0])
            state.write_text('[endpoint "192.0.2.1"]\nflags = signal\n')
            await client.client.call("org.netpathd1.Manager", "Reload")
            await client.call("SetLimits", "uu", [2, 1])  # persisting works again
        stderr = daemon.stop()
    assert f"{state}:3:" in stderr


# -- refusals ---------------------------------------------------------------------------------

BAD_INPUTS = [
    ("AddEndpoint", "sassqu", ["192.0.2.300", ["subflow"], "", 0, 0], "InvalidArgument",
     "192.0.2.300"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["subflow"], "", 0, 256], "InvalidArgument", "256"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["turbo"], "", 0, 0], "InvalidArgument", "'turbo'"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["signal", "fullmesh"], "", 0, 0],
     "InvalidArgument", "'signal' and 'fullmesh'"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["subflow"], "", 80, 0], "InvalidArgument",
     "port 80"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["subflow"], "nosuch0", 0, 0], "NotFound",
     "nosuch0"),
    ("AddEndpoint", "sassqu", ["192.0.2.1", ["signal"], "", 0, 0], "AlreadyExists", "192.0.2.1"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["subflow"], "", 0, 1], "AlreadyExists", "id 1"),
    ("AddEndpointRuntime", "sassqu", ["192.0.2.1", ["signal"], "", 0, 0], "AlreadyExists",
     "192.0.2.1"),
    ("SetLimits", "uu", [9, 0], "InvalidArgument", "subflows 9"),
    ("SetLimits", "uu", [0, 9], "InvalidArgument", "add_addr_accepted 9"),
    ("SetLimitsRuntime", "uu", [9, 9], "InvalidArgument", "subflows 9"),
    ("RemoveEndpoint", "u", [99], "NotFound", "99"),
    ("RemoveEndpoint", "u", [0], "InvalidArgument", "initial subflow"),
    ("SetEndpointFlags", "uas", [99, ["backup"]], "NotFound", "99"),
    ("SetEndpointFlags", "uas", [1, ["signal"]], "InvalidArgument", "signal"),
    ("SetEndpointFlags", "uas", [1, ["turbo"]], "InvalidArgument", "'turbo'"),
    # issue 8 items 6, 8, 9: what the kernel or pyroute2 would fail on, or never use
    ("AddEndpoint", "sassqu", ["fe80::1%eth1", ["subflow"], "", 0, 0], "InvalidArgument",
     "takes no %scope"),
    ("AddEndpointRuntime", "sassqu", ["fe80::1%lo", ["subflow"], "lo", 0, 0], "InvalidArgument",
     "takes no %scope"),
    ("AddEndpoint", "sassqu", ["192.0.2.50", ["subflow"], "e" * 300, 0, 0], "InvalidArgument",
     "must be 1-15 bytes long"),
    ("AddEndpoint", "sassqu", ["0.0.0.0", ["subflow"], "", 0, 0], "InvalidArgument",  # noqa: S104
     "unspecified"),
    ("AddEndpoint", "sassqu", ["255.255.255.255", ["signal"], "", 0, 0], "InvalidArgument",
     "broadcast"),
    ("AddEndpoint", "sassqu", ["224.0.0.1", ["signal"], "", 0, 0], "InvalidArgument",
     "multicast"),
    ("AddEndpoint", "sassqu", ["::ffff:198.51.100.4", ["signal"], "", 0, 0], "InvalidArgument",
     "IPv4-mapped"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: f"{case[0]}-{case[4]}")
async def test_bad_input_changes_neither_kernel_nor_files(
    daemon: Daemon, ns: Netns, bus: PrivateBus, case: tuple[str, str, list[Any], str, str]
) -> None:
    member, signature, body, error, named = case
    async with connected(bus) as client:
        await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["subflow"], "", 0, 1])
        files = {p.name: p.read_bytes() for p in daemon.state_dir.glob("mptcp*")}
        before = (endpoints(ns), limits(ns))
        with pytest.raises(CallError) as refused:
            await client.call(member, signature, body)
        assert refused.value.name == f"org.netpathd1.Error.{error}"
        assert named in refused.value.text
        assert (endpoints(ns), limits(ns)) == before
        assert {p.name: p.read_bytes() for p in daemon.state_dir.glob("mptcp*")} == files


async def test_a_failed_write_takes_the_kernel_change_back(
    daemon: Daemon, ns: Netns, bus: PrivateBus
) -> None:
    (daemon.state_dir / "mptcp.conf").mkdir()  # rename() onto a directory fails
    async with connected(bus) as client:
        with pytest.raises(CallError) as refused:
            await client.call("AddEndpoint", "sassqu", ["192.0.2.5", ["subflow"], "", 0, 0])
        assert refused.value.name == "org.netpathd1.Error.Failed"
        assert "mptcp.conf" in refused.value.text
        assert endpoints(ns) == ""
        with pytest.raises(CallError):
            await client.call("SetLimits", "uu", [5, 5])
        assert limits(ns) == "add_addr_accepted 0 subflows 2"
        await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.5", ["subflow"], "", 0, 0])
        assert endpoints(ns) == "192.0.2.5 id 1 subflow \n"


async def test_mixed_families_are_accepted_with_a_warning(
    daemon: Daemon, ns: Netns, bus: PrivateBus
) -> None:
    async with connected(bus) as client:
        await client.call("AddEndpoint", "sassqu", ["192.0.2.1", ["subflow"], "", 0, 0])
        await client.call("AddEndpoint", "sassqu", ["2001:db8::1", ["subflow"], "", 0, 0])
    assert "2001:db8::1 id 2 subflow" in endpoints(ns)
    stderr = daemon.stop()
    assert "WARNING: endpoint 2001:db8::1 is IPv6 but 192.0.2.1 is IPv4" in stderr


# -- the bus surface ---------------------------------------------------------------------------


async def test_properties_changed_for_every_property(daemon: Daemon, bus: PrivateBus) -> None:
    async with connected(bus) as client:
        await client.call("SetLimits", "uu", [4, 3])
        assert await client.wait_changed("Subflows") == 4
        await client.call("SetLimits", "uu", [4, 5])
        assert await client.wait_changed("AddAddrAccepted") == 5
        (new_id,) = await client.call("AddEndpoint", "sassqu", ["192.0.2.3", [], "", 0, 0])
        assert await client.wait_changed("Endpoints") == [[new_id, "192.0.2.3", 0, "", []]]
        await client.call("SetEndpointFlags", "uas", [new_id, ["backup"]])
        assert await client.wait_changed("Endpoints") == [[new_id, "192.0.2.3", 0, "", ["backup"]]]
        await client.call("RemoveEndpoint", "u", [new_id])
        assert await client.wait_changed("Endpoints") == []
        await client.call("AddEndpoint", "sassqu", ["192.0.2.4", [], "", 0, 0])
        await client.wait_changed("Endpoints")
        await client.call("FlushEndpoints")
        assert await client.wait_changed("Endpoints") == []
        await client.call("SetEnabledRuntime", "b", [False])
        assert await client.wait_changed("Enabled") is False


async def test_the_endpoints_signalled_are_what_the_kernel_lists(
    daemon: Daemon, bus: PrivateBus, ns: Netns
) -> None:
    """An add with its id and a remove signal the table without reading it again: it
    must still be the kernel's, someone else's endpoints and id order included."""
    ns.ip("mptcp", "endpoint", "add", "203.0.113.9", "id", "9", "signal")
    ns.ip("mptcp", "endpoint", "add", "198.51.100.7", "id", "2", "subflow", "backup")
    async with connected(bus) as client:
        for call in (
            ("AddEndpoint", "sassqu", ["192.0.2.3", ["subflow"], "", 0, 5]),
            ("AddEndpointRuntime", "sassqu", ["2001:db8::3", ["fullmesh"], "", 0, 200]),
            ("RemoveEndpoint", "u", [2]),
            ("RemoveEndpoint", "u", [200]),
        ):
            await client.call(*call)
            signalled = await client.wait_changed("Endpoints")
            assert signalled == [list(e) for e in await client.get("Endpoints")], call
        assert [e[0] for e in signalled] == [5, 9]


def test_busctl_reads_and_unprivileged_cannot_change(daemon: Daemon, bus: PrivateBus) -> None:
    bus.busctl("call", *OBJECT, "AddEndpoint", "sassqu", "192.0.2.5", "2", "subflow", "backup",
               "", "0", "3")  # fmt: skip
    shown = bus.busctl("get-property", *OBJECT, "Endpoints", unprivileged=True)
    assert shown.strip() == 'a(usqsas) 1 3 "192.0.2.5" 0 "" 2 "subflow" "backup"'
    assert bus.busctl("get-property", *OBJECT, "Subflows", unprivileged=True).strip() == "u 2"
    connections = bus.busctl("call", *OBJECT, "GetConnections", unprivileged=True)
    assert connections.strip() == "aa{sv} 0"
    for argv in (
        ("call", *OBJECT, "AddEndpoint", "sassqu", "192.0.2.6", "0", "", "0", "0"),
        ("call", *OBJECT, "RemoveEndpoint", "u", "3"),
        ("call", *OBJECT, "FlushEndpoints"),
        ("set-property", *OBJECT, "Enabled", "b", "false"),
    ):
        refused = bus.busctl_result(*argv, unprivileged=True)
        assert refused.returncode != 0
        assert "polkit is not running on this bus, so only root may" in refused.stderr
    assert "192.0.2.5" in bus.busctl("get-property", *OBJECT, "Endpoints")
