"""Per-unit MPTCP (EnableApp/DisableApp/ListApps), SystemWideMode and connection owners.

systemd is not PID 1 here: the "no systemd" answer is tested for real, the rest against
tests/support/fake_systemd.py on the daemon's private bus.  The drop-in the daemon writes is
checked by systemd itself: ``systemd-analyze verify`` works offline on a unit directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_mptcp_bus import CallError, Client, connected
from tests.integration.test_mptcp_kernel import read_line, start, stop
from tests.support import fake_systemd
from tests.support.bus import PrivateBus, private_bus
from tests.support.daemon import Daemon, daemon_env, running_daemon
from tests.support.fake_systemd import FakeCommand, FakeSystemd, FakeUnit
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

DROP_IN = "50-netpathd-mptcp.conf"
ERROR = "org.netpathd1.Error."


@dataclass
class Setup:
    bus: PrivateBus
    daemon: Daemon
    systemd_dir: Path


@pytest.fixture
def setup(ns: Netns, tmp_path: Path) -> Iterator[Setup]:
    """netpathd with --systemd-dir on a bus whose policy also lets a fake systemd in."""
    systemd_dir = tmp_path / "systemd"
    systemd_dir.mkdir()
    with (
        private_bus({fake_systemd.POLICY_FILE: fake_systemd.POLICY}) as bus,
        running_daemon(ns, bus, tmp_path, f"--systemd-dir={systemd_dir}") as daemon,
    ):
        yield Setup(bus, daemon, systemd_dir)


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[Client]:
    async with connected(setup.bus) as created:
        yield created


FRAGMENT = """[Unit]
Description=web

[Service]
Type=oneshot
ExecStart=/bin/sleep 1000
ExecStart=-/bin/echo 'a "quoted" 50%% $HOME'
"""


def web_units(tmp_path: Path) -> list[FakeUnit]:
    fragment = tmp_path / "lib" / "web.service"
    fragment.parent.mkdir(exist_ok=True)
    fragment.write_text(
        "[Unit]\nDescription=web\n\n[Service]\nExecStartPre=/bin/true\nExecStart=/bin/sleep 1000\n"
    )
    return [
        FakeUnit(
            "web.service",
            str(fragment),
            [
                FakeCommand("/bin/sleep", ["/bin/sleep", "1000"]),
                FakeCommand("/bin/echo", ["/bin/echo", 'a "quoted" 50% $HOME'], ["ignore-failure"]),
            ],
            type="oneshot",
        ),
        FakeUnit(
            "root.service",
            "/lib/root.service",
            [FakeCommand("/bin/true", ["/bin/true"], ["privileged"])],
        ),
        FakeUnit("web.socket", "/lib/web.socket"),
    ]


@pytest.fixture
async def systemd(setup: Setup, tmp_path: Path) -> AsyncIterator[FakeSystemd]:
    fake = FakeSystemd(web_units(tmp_path), loaded=["root.service"])
    await fake.start(setup.bus.address)
    try:
        yield fake
    finally:
        fake.stop()


async def refused(client: Client, member: str, unit: str, error: str) -> str:
    with pytest.raises(CallError) as raised:
        await client.call(member, "s", [unit])
    assert raised.value.name == ERROR + error, raised.value
    return raised.value.text


# -- no systemd on the bus: the real answer on this machine ----------------------------


async def test_without_systemd_enable_is_not_supported(setup: Setup, client: Client) -> None:
    text = await refused(client, "EnableApp", "web.service", "NotSupported")
    assert text == "systemd is not running on this bus: per-unit MPTCP needs it"
    assert list(setup.systemd_dir.iterdir()) == []
    assert await client.call("ListApps") == [[]]
    assert "web.service" in await refused(client, "DisableApp", "web.service", "NotFound")


# -- against the fake systemd ------------------------------------------------------------


async def test_enable_list_disable(setup: Setup, client: Client, systemd: FakeSystemd) -> None:
    await client.call("EnableApp", "s", ["web.service"])
    drop_in = setup.systemd_dir / "web.service.d" / DROP_IN
    text = drop_in.read_text()
    assert "[Service]\nExecStart=\n" in text
    assert 'ExecStart="/usr/bin/netpathctl" "run" "--" "/bin/sleep" "1000"\n' in text
    assert (
        'ExecStart=-"/usr/bin/netpathctl" "run" "--" "/bin/echo" "a \\"quoted\\" 50%% $HOME"\n'
        in text
    )
    assert systemd.reloads == 1
    assert await client.call("ListApps") == [["web.service"]]

    # twice: refused, nothing written, no reload
    mtime = drop_in.stat().st_mtime_ns
    assert "already enabled" in await refused(client, "EnableApp", "web.service", "AlreadyExists")
    assert drop_in.stat().st_mtime_ns == mtime
    assert systemd.reloads == 1

    await client.call("DisableApp", "s", ["web.service"])
    assert not (setup.systemd_dir / "web.service.d").exists()
    assert systemd.reloads == 2
    assert await client.call("ListApps") == [[]]
    await refused(client, "DisableApp", "web.service", "NotFound")


async def test_privileged_prefix_is_kept(
    setup: Setup, client: Client, systemd: FakeSystemd
) -> None:
    await client.call("EnableApp", "s", ["root.service"])
    text = (setup.systemd_dir / "root.service.d" / DROP_IN).read_text()
    assert 'ExecStart=+"/usr/bin/netpathctl" "run" "--" "/bin/true"\n' in text


@pytest.mark.parametrize(
    ("unit", "error", "named"),
    [
        ("nope.service", "NotFound", "nope.service"),
        ("web.socket", "InvalidArgument", "not a service"),
        ("web", "InvalidArgument", "not a service"),
        ("../etc.service", "InvalidArgument", "../etc.service"),
        ("getty@.service", "InvalidArgument", "template"),
    ],
)
async def test_bad_units_are_refused_and_nothing_is_written(
    setup: Setup, client: Client, systemd: FakeSystemd, *, unit: str, error: str, named: str
) -> None:
    assert named in await refused(client, "EnableApp", unit, error)
    assert list(setup.systemd_dir.iterdir()) == []
    assert systemd.reloads == 0


async def test_failed_reload_takes_the_drop_in_back(
    setup: Setup, client: Client, systemd: FakeSystemd
) -> None:
    systemd.refuse_reload = True
    assert "Reload" in await refused(client, "EnableApp", "web.service", "Failed")
    assert list(setup.systemd_dir.iterdir()) == []
    systemd.refuse_reload = False
    await client.call("EnableApp", "s", ["web.service"])
    systemd.refuse_reload = True
    await refused(client, "DisableApp", "web.service", "Failed")
    assert (setup.systemd_dir / "web.service.d" / DROP_IN).is_file()  # disk == systemd


async def test_only_root_may_enable(setup: Setup, systemd: FakeSystemd) -> None:
    denied = setup.bus.busctl_result(
        "call", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Mptcp", "EnableApp", "s",
        "web.service", unprivileged=True,
    )  # fmt: skip
    assert denied.returncode != 0
    assert "not authorized for org.netpathd1.mptcp.app" in denied.stderr
    out = setup.bus.busctl(
        "call", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Mptcp", "ListApps",
        unprivileged=True,
    )  # fmt: skip
    assert out.strip() == "as 0"


async def test_systemd_analyze_accepts_the_drop_in(
    setup: Setup, client: Client, systemd: FakeSystemd, tmp_path: Path
) -> None:
    await client.call("EnableApp", "s", ["web.service"])
    units = tmp_path / "verify"
    (units / "web.service.d").mkdir(parents=True)
    (units / "web.service").write_text(FRAGMENT)
    text = (setup.systemd_dir / "web.service.d" / DROP_IN).read_text()
    # verify also checks that the executables exist: point at one that does
    (units / "web.service.d" / DROP_IN).write_text(
        text.replace("/usr/bin/netpathctl", sys.executable)
    )
    verify = await asyncio.create_subprocess_exec(
        "systemd-analyze", "verify", "--man=no", str(units / "web.service"),
        env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0, stderr.decode()


# -- SystemWideMode and owners of connections ---------------------------------------------


async def test_system_wide_mode_says_why(client: Client) -> None:
    mode = await client.get("SystemWideMode")
    # this machine refuses tracing programs: the reason must be the kernel's EPERM
    assert mode == "available" or mode.startswith("unavailable: "), mode
    assert mode == "available" or "EPERM" in mode or "update_socket_protocol" in mode, mode


SERVER = """
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as listener:
    listener.bind(("127.0.0.1", 4321))
    listener.listen()
    print("listening", flush=True)
    conn, _ = listener.accept()
    print("accepted", flush=True)
    conn.recv(1)
"""
CLIENT = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
sock.connect(("127.0.0.1", 4321))
print("connected", flush=True)
sys.stdin.readline()
"""


async def test_connections_name_their_processes(ns: Netns, setup: Setup, client: Client) -> None:
    ns.sysctl("net.mptcp.enabled", "1")
    server = await start(ns, sys.executable, "-c", SERVER)
    peer = None
    try:
        assert await read_line(server) == "listening"
        peer = await start(ns, sys.executable, "-c", CLIENT)
        assert await read_line(peer) == "connected"
        assert await read_line(server) == "accepted"
        (connections,) = await client.call("GetConnections")
        owners = {
            (conn["local_port"].value, tuple(tuple(p) for p in conn["processes"].value))
            for conn in connections
        }
        pids = {pid for _port, procs in owners for pid, _comm in procs}
        # ip netns exec execs the command: the pids are the pythons themselves
        assert peer.pid in pids and server.pid in pids, owners
        assert all(conn["inode"].value > 0 for conn in connections)
        assert {comm for _p, procs in owners for _pid, comm in procs} <= {"python3", "python"}
        code, out, err = await netpathctl(setup.bus, "mptcp", "app", "status")
        assert code == 0, err
        rows = [line.split() for line in out.splitlines()[2:]]
        assert [str(peer.pid), rows[0][1], "1"] in rows, out
    finally:
        for proc in (peer, server):
            if proc is not None:
                await stop(proc)


NOBODY = 65534
# Connects as root, then becomes nobody for good (dumpable again, as a program started
# by nobody would be, so /proc/PID belongs to nobody).
NOBODY_CLIENT = f"""
import ctypes, os, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
sock.connect(("127.0.0.1", 4321))
os.setgroups([])
os.setresgid({NOBODY}, {NOBODY}, {NOBODY})
os.setresuid({NOBODY}, {NOBODY}, {NOBODY})
ctypes.CDLL(None).prctl(4, 1)  # PR_SET_DUMPABLE
print("connected", flush=True)
sys.stdin.readline()
"""
TWO_CLIENTS_SERVER = SERVER.replace(
    "conn, _ = listener.accept()", "conn, _ = listener.accept()\n    other, _ = listener.accept()"
)


def owners_seen(bus: PrivateBus, unprivileged: bool) -> set[int]:
    """The pids GetConnections names, as root or as nobody (busctl's JSON)."""
    out = bus.busctl(
        "--json=short", "call", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Mptcp",
        "GetConnections", unprivileged=unprivileged,
    )  # fmt: skip
    (connections,) = json.loads(out)["data"]
    return {pid for conn in connections for pid, _comm in conn["processes"]["data"]}


async def test_process_owners_only_for_callers_allowed_to_see_them(ns: Netns, setup: Setup) -> None:
    """As ``ss -Mnp`` shows them: root sees every process, another uid only its own."""
    ns.sysctl("net.mptcp.enabled", "1")
    server = await start(ns, sys.executable, "-c", TWO_CLIENTS_SERVER)
    peers = []
    try:
        assert await read_line(server) == "listening"
        for script in (CLIENT, NOBODY_CLIENT):
            peers.append(await start(ns, sys.executable, "-c", script))
            assert await read_line(peers[-1]) == "connected"
        root_peer, nobody_peer = peers
        assert await read_line(server) == "accepted"
        assert owners_seen(setup.bus, unprivileged=False) == {
            server.pid,
            root_peer.pid,
            nobody_peer.pid,
        }
        assert owners_seen(setup.bus, unprivileged=True) == {nobody_peer.pid}
    finally:
        for proc in (*peers, server):
            await stop(proc)


async def netpathctl(bus: PrivateBus, *argv: str) -> tuple[int, str, str]:
    """netpathctl as a process, awaited: the fake systemd lives in this test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "netpathd.ctl.main", f"--bus-address={bus.address}", *argv,
        env=daemon_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_netpathctl_mptcp_app(setup: Setup, systemd: FakeSystemd) -> None:
    code, out, err = await netpathctl(setup.bus, "mptcp", "app", "enable", "web.service")
    assert code == 0, err
    assert "MPTCP enabled for web.service" in out
    assert await netpathctl(setup.bus, "mptcp", "app", "list") == (0, "web.service\n", "")
    code, _, err = await netpathctl(setup.bus, "mptcp", "app", "enable", "web.service")
    assert code == 5, err  # AlreadyExists
    code, out, err = await netpathctl(setup.bus, "mptcp", "app", "status")
    assert code == 0, err
    assert out.startswith("System-wide BPF mode: ")
    assert "No process holds an MPTCP connection." in out
    code, out, _ = await netpathctl(setup.bus, "--json", "mptcp", "app", "status")
    assert json.loads(out)["processes"] == []
    assert (await netpathctl(setup.bus, "mptcp", "app", "disable", "web.service"))[0] == 0
    code, _, err = await netpathctl(setup.bus, "mptcp", "app", "disable", "web.service")
    assert code == 3, err  # NotFound
    assert "not enabled for web.service" in err
