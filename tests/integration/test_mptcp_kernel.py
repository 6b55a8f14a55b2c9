"""The MPTCP adapters against the real kernel, each call inside a throw-away namespace.

Every adapter call runs in ``mptcp_driver.py`` under ``ip netns exec`` (the
adapters act on the current namespace; pytest never leaves its own), and
what it did is checked with ``ip mptcp`` as the independent witness.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Netns, guide_paths, netns, veth

pytestmark = pytest.mark.integration

DRIVER = str(Path(__file__).with_name("mptcp_driver.py"))
EVENT_TIMEOUT = 20.0


def call(ns: Netns, verb: str, args: dict[str, Any] | None = None) -> Any:
    done = ns.exec(sys.executable, DRIVER, verb, json.dumps(args or {}), check=False)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def refused(ns: Netns, verb: str, args: dict[str, Any], error: str) -> str:
    """Call, expect the netpathd error ``error``, return its message."""
    answer = call(ns, verb, args)
    assert isinstance(answer, dict), answer
    assert answer.get("error") == f"org.netpathd1.Error.{error}", answer
    return str(answer["message"])


def endpoints(ns: Netns) -> str:
    return ns.ip("mptcp", "endpoint", "show").stdout


def limits(ns: Netns) -> str:
    return ns.ip("mptcp", "limits", "show").stdout.strip()


def test_limits_round_trip(ns: Netns) -> None:
    assert call(ns, "get_limits") == {"subflows": 2, "add_addr_accepted": 0}
    call(ns, "set_limits", {"subflows": 1, "add_addr_accepted": 8})
    assert limits(ns) == "add_addr_accepted 8 subflows 1"
    ns.ip("mptcp", "limits", "set", "subflows", "4", "add_addr_accepted", "3")
    assert call(ns, "get_limits") == {"subflows": 4, "add_addr_accepted": 3}


@pytest.fixture
def dev_ns(ns: Netns) -> Iterator[Netns]:
    """``ns`` with a veth end "eth1" holding 192.0.2.1 and 2001:db8::1."""
    with netns() as peer:
        veth(ns, "eth1", peer, "eth1")
        ns.ip("address", "add", "192.0.2.1/24", "dev", "eth1")
        ns.ip("address", "add", "2001:db8::1/64", "dev", "eth1", "nodad")
        yield ns


def test_endpoints_read_back_like_ip_mptcp(dev_ns: Netns) -> None:
    ns = dev_ns
    assert call(ns, "add", {"address": "192.0.2.1", "flags": ["signal"], "port": 4321}) == 1
    assert (
        call(ns, "add", {"address": "198.51.100.5", "flags": ["subflow", "fullmesh"], "id": 7}) == 7
    )
    new_id = call(
        ns, "add", {"address": "2001:db8::1", "flags": ["subflow", "backup"], "interface": "eth1"}
    )
    assert new_id == 8  # the kernel continues after the highest id in use
    shown = endpoints(ns).splitlines()
    assert "192.0.2.1 port 4321 id 1 signal " in shown
    assert "198.51.100.5 id 7 subflow fullmesh " in shown
    assert "2001:db8::1 id 8 subflow backup dev eth1 " in shown
    listed = {e["id"]: e for e in call(ns, "list")}
    assert listed[8]["interface"] == "eth1"
    assert listed[8]["ifindex"] > 0
    assert listed[1]["port"] == 4321

    ns.ip("mptcp", "endpoint", "add", "203.0.113.9", "id", "200", "signal", "backup")
    assert call(ns, "list")[-1] == {
        "id": 200,
        "address": "203.0.113.9",
        "port": 0,
        "interface": "",
        "ifindex": 0,
        "flags": ["backup", "signal"],
    }


def test_an_add_after_a_read_spares_the_read_back(dev_ns: Netns) -> None:
    """With its id given, the table after an add is the one before plus the new entry,
    in the kernel's id order: what a dump right after says, without that dump."""
    ns = dev_ns
    ns.ip("mptcp", "endpoint", "add", "198.51.100.5", "id", "9", "signal")
    ns.ip("mptcp", "endpoint", "add", "203.0.113.9", "id", "2", "subflow")
    new = {"address": "2001:db8::1", "id": 3, "interface": "eth1", "flags": ["subflow", "backup"]}
    added = call(ns, "add_after_reading", new)
    assert added["id"] == 3
    assert added["table"] == added["dumped"]
    assert [e["id"] for e in added["table"]] == [2, 3, 9]
    assert added["table"][1]["interface"] == "eth1"
    assert added["sent"] == [1]  # MPTCP_PM_CMD_ADD_ADDR, and no GET_ADDR after it
    chosen = call(ns, "add_after_reading", {"address": "192.0.2.1", "flags": ["subflow"]})
    assert chosen["id"] == 10  # the kernel's choice needs the read
    assert chosen["table"] == chosen["dumped"]
    assert chosen["sent"] == [1, 3]


def test_set_flags_keeps_the_other_flag(ns: Netns) -> None:
    ns.ip("mptcp", "endpoint", "add", "192.0.2.7", "id", "3", "subflow", "fullmesh")
    changed = call(ns, "set_flags", {"id": 3, "flags": ["backup", "fullmesh"]})
    assert changed["flags"] == ["backup", "fullmesh", "subflow"]
    assert endpoints(ns) == "192.0.2.7 id 3 subflow backup fullmesh \n"
    call(ns, "set_flags", {"id": 3, "flags": ["backup", "fullmesh"]})  # idempotent
    call(ns, "set_flags", {"id": 3, "flags": []})
    assert endpoints(ns) == "192.0.2.7 id 3 subflow \n"


def test_remove_and_flush(ns: Netns) -> None:
    for address in ("192.0.2.7", "192.0.2.8", "192.0.2.9"):
        call(ns, "add", {"address": address, "flags": ["subflow"]})
    call(ns, "set_limits", {"subflows": 3, "add_addr_accepted": 2})
    assert call(ns, "remove", {"id": 2}) is None
    assert endpoints(ns) == "192.0.2.7 id 1 subflow \n192.0.2.9 id 3 subflow \n"
    call(ns, "flush")
    assert endpoints(ns) == ""
    assert limits(ns) == "add_addr_accepted 2 subflows 3"


def test_sleeping_kernel_calls_leave_the_event_loop(ns: Netns) -> None:
    """DEL_ADDR and FLUSH_ADDRS wait in synchronize_rcu() (net/mptcp/pm_kernel.c), 7-15 ms
    here: sent from the loop they would stall every D-Bus caller meanwhile."""
    addresses = ["192.0.2.7", "192.0.2.8", "192.0.2.9"]
    assert call(ns, "sleeping_requests_on_loop", {"addresses": addresses}) == []
    assert endpoints(ns) == ""


BAD_INPUTS = [
    ("add", {"address": "192.0.2.50", "flags": ["subflow"], "id": 256}, "InvalidArgument", "256"),
    ("add", {"address": "192.0.2.50", "flags": ["signal", "fullmesh"]}, "InvalidArgument",
     "fullmesh"),
    ("add", {"address": "192.0.2.50", "flags": ["turbo"]}, "InvalidArgument", "'turbo'"),
    ("add", {"address": "192.0.2.50", "flags": ["subflow"], "port": 80}, "InvalidArgument",
     "port 80"),
    ("add", {"address": "192.0.2.300", "flags": ["subflow"]}, "InvalidArgument", "192.0.2.300"),
    ("add", {"address": "192.0.2.50", "interface": "nosuch0"}, "NotFound", "nosuch0"),
    ("add", {"address": "192.0.2.1", "flags": ["subflow"]}, "AlreadyExists", "192.0.2.1"),
    # the kernel would call it a duplicate of 192.0.2.1 (EEXIST); refused before it is asked
    ("add", {"address": "::ffff:192.0.2.1", "flags": ["subflow"]}, "InvalidArgument",
     "IPv4-mapped"),
    ("add", {"address": "192.0.2.50", "flags": ["subflow"], "id": 1}, "AlreadyExists", "id 1"),
    ("add", {"address": "192.0.2.50", "flags": ["signal"], "port": 4321}, "Failed",
     "EADDRNOTAVAIL"),
    ("set_limits", {"subflows": 9, "add_addr_accepted": 0}, "InvalidArgument", "subflows 9"),
    ("remove", {"id": 99}, "NotFound", "99"),
    ("remove", {"id": 0}, "InvalidArgument", "initial subflow"),
    ("set_flags", {"id": 99, "flags": ["backup"]}, "NotFound", "99"),
    ("set_flags", {"id": 1, "flags": ["signal"]}, "InvalidArgument", "signal"),
]  # fmt: skip


@pytest.mark.parametrize(("verb", "args", "error", "named"), BAD_INPUTS)
def test_bad_input_is_refused_and_changes_nothing(
    ns: Netns, verb: str, args: dict[str, Any], error: str, named: str
) -> None:
    ns.ip("mptcp", "endpoint", "add", "192.0.2.1", "id", "1", "subflow")
    before = (endpoints(ns), limits(ns))
    assert named in refused(ns, verb, args, error)
    assert (endpoints(ns), limits(ns)) == before


def test_ninth_endpoint_is_refused(ns: Netns) -> None:
    for host in range(1, 9):
        call(ns, "add", {"address": f"203.0.113.{host}", "flags": ["subflow"]})
    before = endpoints(ns)
    assert "at most 8 endpoints" in refused(
        ns, "add", {"address": "203.0.113.9", "flags": ["subflow"]}, "InvalidArgument"
    )
    assert endpoints(ns) == before


SERVER = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as listener:
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 4321))
    listener.listen()
    print("listening", flush=True)
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
"""

CLIENT = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as sock:
    sock.connect(("192.0.2.1", 4321))
    sock.sendall(b"x" * 100000)
    got = 0
    while got < 100000:
        got += len(sock.recv(65536))
    print("exchanged", flush=True)
    sys.stdin.readline()
"""


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), EVENT_TIMEOUT)
    assert line, "process ended early"
    return line.decode().strip()


async def start(ns: Netns, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *ns.exec_argv(*argv),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await asyncio.wait_for(proc.wait(), EVENT_TIMEOUT)


@pytest.fixture
def two_paths() -> Iterator[tuple[Netns, Netns]]:
    """The guide's setup: server and client joined by 192.0.2.0/24 and 198.51.100.0/24."""
    with netns("srv") as server, netns("cli") as client:
        guide_paths(server, client)
        yield server, client


async def test_guide_scenario_events_and_connections(two_paths: tuple[Netns, Netns]) -> None:
    server, client = two_paths
    for ns in (server, client):
        assert call(ns, "sysctl", {"enabled": True}) == {"enabled": True}
    call(server, "set_limits", {"subflows": 1, "add_addr_accepted": 0})
    call(client, "set_limits", {"subflows": 1, "add_addr_accepted": 1})
    call(server, "add", {"address": "198.51.100.1", "interface": "s2", "flags": ["signal"]})

    events = await start(client, sys.executable, DRIVER, "events")
    listener = await start(server, sys.executable, "-c", SERVER)
    connection = None
    try:
        assert await read_line(events) == "ready"
        assert await read_line(listener) == "listening"
        connection = await start(client, sys.executable, "-c", CLIENT)
        assert await read_line(connection) == "exchanged"

        seen: dict[str, dict[str, Any]] = {}
        while "sub_established" not in seen:
            event = json.loads(await read_line(events))
            seen.setdefault(event["kind"], event["details"])
        assert {"created", "established", "announced"} <= seen.keys()
        token = seen["created"]["token"]
        assert seen["established"]["daddr4"] == "192.0.2.1"
        assert seen["established"]["dport"] == 4321
        # the client's side: the kernel omits server_side rather than sending 0
        assert not seen["established"].get("server_side", False)
        announced = seen["announced"]
        assert (announced["token"], announced["rem_id"], announced["daddr4"]) == (
            token, 1, "198.51.100.1",
        )  # fmt: skip
        sub = seen["sub_established"]
        assert (sub["token"], sub["saddr4"], sub["daddr4"], sub["rem_id"]) == (
            token, "198.51.100.2", "198.51.100.1", 1,
        )  # fmt: skip
        assert sub["backup"] is False
        # the client had no endpoints: the kernel added an implicit one for the join
        assert call(client, "list") == [
            {"id": sub["loc_id"], "address": "198.51.100.2", "port": 0, "interface": "",
             "ifindex": 0, "flags": ["implicit"]},
        ]  # fmt: skip

        (conn,) = call(client, "connections")
        assert conn["token"] == token
        assert conn["remote_address"] == "192.0.2.1"
        assert conn["extra_subflows"] == 1
        assert conn["add_addr_accepted"] == 1
        assert conn["bytes_sent"] >= 100000
        paths = sorted((s["local_address"], s["remote_address"]) for s in conn["subflows"])
        assert paths == [("192.0.2.2", "192.0.2.1"), ("198.51.100.2", "198.51.100.1")]
        assert {s["token_local"] for s in conn["subflows"]} == {token}
    finally:
        for proc in (connection, listener, events):
            if proc is not None:
                await stop(proc)


LOOPBACK_CONNECTIONS = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    for _ in range(int(sys.argv[1])):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as client:
            client.connect(listener.getsockname())
            listener.accept()[0].close()
"""


async def test_event_overrun_resubscribes_and_keeps_going(ns: Netns) -> None:
    call(ns, "sysctl", {"enabled": True})
    events = await start(ns, sys.executable, DRIVER, "events", '{"rcvbuf": 4096, "pause": 3}')
    try:
        assert await read_line(events) == "ready"
        # about 6 events per connection, far more than 4 KiB of socket buffer holds
        ns.exec(sys.executable, "-c", LOOPBACK_CONNECTIONS, "200")
        kinds = []
        while "overrun" not in kinds:
            kinds.append(json.loads(await read_line(events))["kind"])
        ns.exec(sys.executable, "-c", LOOPBACK_CONNECTIONS, "1")
        while kinds[-1] != "listener_closed":
            kinds.append(json.loads(await read_line(events))["kind"])
    finally:
        await stop(events)
