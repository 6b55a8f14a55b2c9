"""Run inside the VM (tests/vm/test_vm_bpf.py boots it): the TCP->MPTCP program for real.

Debian's 6.12 kernel accepts the program; the daemon runs in namespace ``client`` (its own
netns is the one listed in the program's netns map), a server in ``server`` listens with
IPPROTO_MPTCP explicitly and signals a second address, as in the guide's two-path scenario.
Each client is an ordinary TCP program; what the kernel made of its socket is read back
with SO_PROTOCOL, MPTCP_INFO and ``ss -tiO``.  Not collected on the host (its name does not
match test_*.py); the host test runs this file with pytest inside the guest.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bus import PrivateBus, private_bus
from tests.support.daemon import Daemon, start_daemon
from tests.support.netns import Netns, guide_paths, netns
from tests.vm.vm import BPFFS, CGROUP2, GUEST_OUT

pytestmark = pytest.mark.integration

CLIENTS = Path(__file__).parent / "clients"
PORT, SIZE = 5201, 1 << 18
PATTERN = (bytes(range(251)) * (SIZE // 251 + 1))[:SIZE]  # what every client sends
IPPROTO_TCP, IPPROTO_MPTCP = 6, 262
READY = 180.0  # TCG runs Python several times slower than the host: generous
SERVER = (
    textwrap.dedent(
        """
    import hashlib, socket, threading
    def serve(conn):
        with conn:
            digest, seen = hashlib.sha256(), 0
            while seen < SIZE:
                data = conn.recv(65536)
                if not data:
                    return
                digest.update(data)
                seen += len(data)
            conn.sendall(digest.hexdigest().encode())
            while conn.recv(1):
                pass
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))
    listener.listen()
    print("listening", flush=True)
    while True:
        threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
    """
    )
    .replace("SIZE", str(SIZE))
    .replace("PORT", str(PORT))
)
PROTOCOL = (
    "import socket, sys; s = socket.socket(int(sys.argv[1]), int(sys.argv[2]));"
    " print(s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))"
)


@dataclass
class World:
    server: Netns
    client: Netns
    bus: PrivateBus
    workdir: Path
    daemon: Daemon | None = None

    @property
    def systemd_dir(self) -> Path:
        return self.workdir / "systemd"

    def start(self, *extra: str) -> Daemon:
        self.systemd_dir.mkdir(exist_ok=True)
        self.daemon = start_daemon(
            self.client, self.bus, self.workdir, f"--systemd-dir={self.systemd_dir}", *extra,
            ready_timeout=READY,
        )  # fmt: skip
        return self.daemon

    def busctl(self, *argv: str) -> str:
        return self.bus.busctl(*argv)

    def set_property(self, name: str, signature: str, *values: str) -> None:
        self.busctl(
            "set-property", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Mptcp", name,
            signature, *values,
        )  # fmt: skip

    def get_property(self, name: str) -> object:
        text = self.busctl(
            "--json=short", "get-property", "org.netpathd1", "/org/netpathd1",
            "org.netpathd1.Mptcp", name,
        )  # fmt: skip
        return json.loads(text)["data"]

    def netpathctl(self, *argv: str, cgroup: str | None = None, ok: bool = True) -> str:
        """netpathctl's stdout (with ``ok``), else its stderr; optionally from a cgroup."""
        command = [sys.executable, "-m", "netpathd.ctl.main", f"--bus-address={self.bus.address}",
                   *argv]  # fmt: skip
        if cgroup is not None:
            command = in_cgroup(cgroup, command)
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=READY,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "daemon")},
        )  # fmt: skip
        assert (result.returncode == 0) == ok, result.stderr
        return result.stdout if ok else result.stderr

    def protocol(self, family: int = 2, type_: int = 1, *, ns: Netns | None = None,
                 cgroup: str | None = None) -> int:  # fmt: skip
        """SO_PROTOCOL of a new socket made by a fresh Python process."""
        command = [sys.executable, "-c", PROTOCOL, str(family), str(type_)]
        if cgroup is not None:
            command = in_cgroup(cgroup, command)
        result = (ns or self.client).exec(*command)
        return int(result.stdout)


def in_cgroup(cgroup: str, command: list[str]) -> list[str]:
    """``command`` run from inside ``cgroup`` (created if needed), as systemd starts units."""
    Path(f"{CGROUP2}{cgroup}").mkdir(parents=True, exist_ok=True)
    return ["sh", "-c", f'echo $$ > {CGROUP2}{cgroup}/cgroup.procs && exec "$@"', "sh", *command]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with netns("srv") as server, netns("cli") as client, private_bus() as bus:
        guide_paths(server, client)
        for ns in (server, client):
            ns.sysctl("net.mptcp.enabled", "1")
            ns.ip("mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2")
        server.ip("mptcp", "endpoint", "add", "198.51.100.1", "dev", "s2", "signal")
        listener = subprocess.Popen(
            server.exec_argv(sys.executable, "-c", SERVER), stdout=subprocess.PIPE, text=True
        )
        assert listener.stdout is not None and listener.stdout.readline() == "listening\n"
        world = World(server, client, bus, tmp_path_factory.mktemp("daemon"))
        world.start()
        try:
            yield world
        finally:
            if world.daemon is not None:
                world.daemon.stop()
            listener.kill()
            listener.wait()


def test_the_probe_sees_the_hook_available(world: World) -> None:
    assert world.get_property("SystemWideMode") == "available"
    assert world.get_property("TcpToMptcpBackend") == "bpf"


def subflows(ns: Netns) -> list[str]:
    """``ss -tiO`` lines of TCP subflows to the server's port that run the MPTCP ULP."""
    lines = ns.exec("ss", "-tniO", "state", "established", f"( dport = :{PORT} )").stdout
    return [line for line in lines.splitlines() if "tcp-ulp-mptcp" in line]


def client_command(kind: str) -> list[str]:
    if kind == "python":
        return [sys.executable, str(CLIENTS / "client.py")]
    return [f"{GUEST_OUT}/client_{kind}"]


@pytest.mark.parametrize("kind", ["python", "c", "go"])
def test_system_wide_makes_plain_tcp_clients_mptcp_over_two_paths(world: World, kind: str) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    argv = world.client.exec_argv(*client_command(kind), "192.0.2.1", str(PORT), str(SIZE))
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        report = json.loads(client.stdout.readline())
        expected = hashlib.sha256(PATTERN).hexdigest()
        assert report == {"protocol": IPPROTO_MPTCP, "mptcp_info_errno": 0, "digest": expected}
        deadline = time.monotonic() + 30
        while len(subflows(world.client)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the second subflow follows the server's ADD_ADDR
        found = subflows(world.client)
        assert len(found) >= 2, found
    finally:
        client.communicate("", timeout=60)


def test_udp_and_unix_sockets_are_untouched(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    assert world.protocol(2, 2) == 17  # AF_INET, SOCK_DGRAM
    assert world.protocol(1, 1) == 0  # AF_UNIX, SOCK_STREAM
    assert world.protocol(10, 1) == IPPROTO_MPTCP  # AF_INET6 streams are converted


def test_a_namespace_with_mptcp_disabled_keeps_working_tcp(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    with netns("off") as off:
        off.sysctl("net.mptcp.enabled", "0")
        script = (
            "import socket; l = socket.create_server(('127.0.0.1', 0)); c = socket.socket();"
            " c.connect(l.getsockname()); print(c.getsockopt(socket.SOL_SOCKET, 38))"
        )
        assert off.exec(sys.executable, "-c", script).stdout.strip() == str(IPPROTO_TCP)


def test_counters_count_seen_and_converted(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    before = world.get_property("TcpToMptcpStats")
    assert isinstance(before, dict)
    world.protocol()
    after = world.get_property("TcpToMptcpStats")
    assert isinstance(after, dict)
    assert after["converted"] >= before["converted"] + 1
    assert after["seen"] >= after["converted"]


def test_off_makes_new_sockets_tcp_again(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    assert world.protocol() == IPPROTO_MPTCP
    world.netpathctl("mptcp", "system-wide", "off")
    assert world.protocol() == IPPROTO_TCP
    assert "System-wide: off" in world.netpathctl("mptcp", "system-wide")


def test_cgroup_scope_covers_that_cgroup_and_its_children_only(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "off")
    for path in ("/chosen/child/grandchild", "/other"):
        Path(f"{CGROUP2}{path}").mkdir(parents=True, exist_ok=True)
    world.set_property("SystemWideInclude", "as", "1", "/chosen")
    try:
        assert world.protocol(cgroup="/chosen") == IPPROTO_MPTCP
        assert world.protocol(cgroup="/chosen/child/grandchild") == IPPROTO_MPTCP
        assert world.protocol(cgroup="/other") == IPPROTO_TCP
        assert world.protocol(cgroup="") == IPPROTO_TCP  # the root cgroup
    finally:
        world.set_property("SystemWideInclude", "as", "0")


def test_system_wide_exclusion_leaves_a_cgroup_on_tcp(world: World) -> None:
    Path(f"{CGROUP2}/excluded/child").mkdir(parents=True, exist_ok=True)
    world.set_property("SystemWideExclude", "as", "1", "/excluded")
    world.netpathctl("mptcp", "system-wide", "on")
    try:
        assert world.protocol(cgroup="/excluded/child") == IPPROTO_TCP
        assert world.protocol(cgroup="") == IPPROTO_MPTCP
    finally:
        world.set_property("SystemWideExclude", "as", "0")


def test_the_netns_map_follows_net_mptcp_enabled(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    world.netpathctl("mptcp", "enabled", "no")
    try:
        assert world.protocol() == IPPROTO_TCP  # not ENOPROTOOPT: out of the map first
    finally:
        world.netpathctl("mptcp", "enabled", "yes")
    assert world.protocol() == IPPROTO_MPTCP


def test_a_unit_registers_its_cgroup_from_exec_start_pre(world: World) -> None:
    """What EnableApp's drop-in does: ExecStartPre=+netpathctl mptcp app register runs in
    the unit's cgroup; after its reply, the unit's processes (and children) get MPTCP."""
    world.netpathctl("mptcp", "system-wide", "off")
    drop_in = world.systemd_dir / "web.service.d" / "50-netpathd-mptcp.conf"
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(  # as MptcpApps.enable(bpf=True) writes it (tests/unit covers that)
        "[Service]\nExecStartPre=+/usr/bin/netpathctl mptcp app register\n"
    )
    web, other = "/system.slice/web.service", "/system.slice/other.service"
    assert world.protocol(cgroup=web) == IPPROTO_TCP
    text = world.netpathctl("mptcp", "app", "register", cgroup=web)
    assert text.strip() == "MPTCP for new TCP sockets of web.service"
    assert world.protocol(cgroup=web) == IPPROTO_MPTCP
    assert world.protocol(cgroup=f"{web}/worker") == IPPROTO_MPTCP
    assert world.protocol(cgroup=other) == IPPROTO_TCP
    refused = world.netpathctl("mptcp", "app", "register", cgroup=other, ok=False)
    assert "other.service is not enabled for MPTCP" in refused
    assert "web.service  bpf" in world.netpathctl("mptcp", "app", "status")


def kill(world: World) -> None:
    assert world.daemon is not None
    world.daemon.process.send_signal(signal.SIGKILL)
    world.daemon.process.wait(timeout=60)
    world.daemon = None


def test_a_killed_daemon_leaves_new_sockets_on_tcp(world: World) -> None:
    world.netpathctl("mptcp", "system-wide", "on")
    assert world.protocol() == IPPROTO_MPTCP
    kill(world)
    assert world.protocol() == IPPROTO_TCP  # the kernel dropped the link with its last fd
    world.start()
    assert world.protocol() == IPPROTO_MPTCP  # SystemWide was persisted


def test_a_pinned_program_survives_the_daemon_and_is_readopted(world: World) -> None:
    pin = f"{BPFFS}/netpathd"
    if world.daemon is not None:
        world.daemon.stop()
    world.start(f"--bpf-pin={pin}")
    world.netpathctl("mptcp", "system-wide", "on")
    assert Path(pin, "link").exists()
    kill(world)
    assert world.protocol() == IPPROTO_MPTCP  # pinned: still attached without the daemon
    daemon = world.start(f"--bpf-pin={pin}")
    daemon.wait_notify("READY=1")
    assert world.protocol() == IPPROTO_MPTCP
    world.netpathctl("mptcp", "system-wide", "off")
    assert not Path(pin).exists()  # unpinned on SystemWide=false
    assert world.protocol() == IPPROTO_TCP
    stderr = daemon.stop()
    world.daemon = None
    assert f"re-adopted the TCP->MPTCP program pinned in {pin}" in stderr
