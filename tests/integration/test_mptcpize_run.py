"""`netpathctl run` end to end: real programs in throw-away namespaces get MPTCP sockets.

Topology: a client and a server namespace joined by two veth pairs (192.0.2.0/24 and
198.51.100.0/24); the client announces its second address as a `subflow` endpoint, so a real
MPTCP connection grows a second subflow.  The server listens with IPPROTO_MPTCP and reports,
per connection, whether MPTCP is in use: ``getsockopt(SOL_MPTCP, MPTCP_INFO)`` fails with
EOPNOTSUPP on a plain-TCP or fallen-back connection (net/mptcp/sockopt.c).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.netns import Netns, netns, veth

pytestmark = pytest.mark.integration

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
SERVER = "192.0.2.2"
PORT = 4000
TIMEOUT = 30
NETPATHCTL_RUN = (sys.executable, "-m", "netpathd.ctl.run", "--")

SERVER_PY = r"""
import hashlib, json, socket, struct, sys, time
SOL_MPTCP, MPTCP_INFO = 284, 1

def mptcp_state(conn):
    # MPTCP_INFO byte 0 is mptcpi_subflows (joined subflows); give the join a moment.
    deadline = time.monotonic() + 5
    while True:
        try:
            raw = conn.getsockopt(SOL_MPTCP, MPTCP_INFO, 48)
        except OSError:
            return False, 0
        if raw[0] >= 1 or time.monotonic() > deadline:
            return True, raw[0]
        time.sleep(0.01)

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(64)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        if conn.recv(4, socket.MSG_PEEK) == b"GET ":
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            mptcp, subflows = mptcp_state(conn)
            body = json.dumps({"mptcp": mptcp, "subflows": subflows}).encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            continue
        # The client waits for "go": the path manager only adds a subflow to an established
        # connection, and a client that sent everything and shut down would race it.
        conn.recv(4)
        mptcp, subflows = mptcp_state(conn)
        conn.sendall(b"go\n")
        with conn.makefile("rb") as stream:  # a live makefile() would keep conn open
            (size,) = struct.unpack("!Q", stream.read(8))
            digest = hashlib.sha256(stream.read(size)).hexdigest()
        reply = {"sha256": digest, "mptcp": mptcp, "subflows": subflows}
        conn.sendall(json.dumps(reply).encode() + b"\n")
"""

# A client library for the Python test programs: one exchange, reported as a JSON line.
CLIENT_PY = r"""
import hashlib, json, os, socket, struct

def exchange(sock=None, size=1 << 20):
    data = os.urandom(size)
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(20)
    proto = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    sock.connect(("192.0.2.2", 4000))
    sock.sendall(b"DATA")
    with sock.makefile() as lines:
        assert lines.readline() == "go\n"
        sock.sendall(struct.pack("!Q", size) + data)
        sock.shutdown(socket.SHUT_WR)
        reply = json.loads(lines.readline())
    sock.close()
    intact = reply.pop("sha256") == hashlib.sha256(data).hexdigest()
    return {"proto": proto, "intact": intact, "server": reply}
"""

STATIC_C = r"""
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    size_t n = 1 << 20, total = n + 8;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    for (size_t i = 0; i < n; i++) buf[8 + i] = (unsigned char)(i * 7 + i / 251);
    int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP), proto = 0;
    socklen_t len = sizeof proto;
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(4000)};
    inet_pton(AF_INET, "192.0.2.2", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
    char go[3];
    if (write(fd, "DATA", 4) != 4 || read(fd, go, 3) != 3) { perror("handshake"); return 1; }
    for (size_t off = 0; off < total;) {
        ssize_t w = write(fd, buf + off, total - off);
        if (w <= 0) { perror("write"); return 1; }
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    printf("{\"proto\": %d, \"server\": ", proto);
    char reply[512];
    ssize_t got;
    while ((got = read(fd, reply, sizeof reply)) > 0) fwrite(reply, 1, (size_t)got, stdout);
    printf("}\n");
    return 0;
}
"""


def static_c_payload() -> bytes:
    n = 1 << 20
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


@dataclass
class Lab:
    client: Netns
    server: Netns
    programs: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": f"{DAEMON}{os.pathsep}{self.programs}"}

    def run_argv(self, *command: str) -> list[str]:
        return self.client.exec_argv(*NETPATHCTL_RUN, *command)

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.run_argv(*command),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.env(),
            check=False,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run Python `code` (which may `from client import exchange`) under netpathctl run."""
        return self.run(sys.executable, "-c", code)


def readline(stream: object, timeout: float = TIMEOUT) -> str:
    """One line from a child's pipe, failing instead of hanging when it never comes."""
    assert hasattr(stream, "readline")
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no line before the timeout"
    line: str = stream.readline()
    return line.strip()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    (tmp_path / "server.py").write_text(SERVER_PY)
    (tmp_path / "client.py").write_text(CLIENT_PY)
    with netns("npc") as client, netns("nps") as server:
        veth(client, "va", server, "va")
        veth(client, "vb", server, "vb")
        client.ip("addr", "add", "192.0.2.1/24", "dev", "va")
        server.ip("addr", "add", "192.0.2.2/24", "dev", "va")
        client.ip("addr", "add", "198.51.100.1/24", "dev", "vb")
        server.ip("addr", "add", "198.51.100.2/24", "dev", "vb")
        for ns in (client, server):
            ns.sysctl("net.mptcp.enabled", "1")
        client.ip("mptcp", "endpoint", "add", "198.51.100.1", "dev", "vb", "subflow")
        argv = server.exec_argv(sys.executable, str(tmp_path / "server.py"), str(PORT))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        try:
            assert readline(proc.stdout) == "ready"
            yield Lab(client, server, tmp_path)
        finally:
            proc.kill()
            proc.wait(TIMEOUT)


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


MULTIPATH = {"mptcp": True, "subflows": 1}


def test_python_client_gets_mptcp_and_data_intact(lab: Lab) -> None:
    report = last_json(
        lab.python("from client import exchange; import json; print(json.dumps(exchange()))")
    )
    assert report == {"proto": 262, "intact": True, "server": MULTIPATH}


def test_static_c_client(lab: Lab) -> None:
    source = lab.programs / "client.c"
    source.write_text(STATIC_C)
    binary = lab.programs / "client-static"
    built = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if built.returncode != 0 and "-lc" in built.stderr:
        pytest.skip("static libc (libc.a from libc6-dev) is missing")
    assert built.returncode == 0, built.stderr
    assert (
        "statically linked"
        in subprocess.run(
            ["file", str(binary)], capture_output=True, text=True, timeout=TIMEOUT, check=True
        ).stdout
    )
    result = lab.run(str(binary))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the server's reply line sits inside the C's braces
    server = report["server"]
    assert isinstance(server, dict)
    assert server.pop("sha256") == hashlib.sha256(static_c_payload()).hexdigest()
    assert report == {"proto": 262, "server": MULTIPATH}


def test_curl_connection_is_mptcp_on_the_server(lab: Lab) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = lab.run(curl, "-sS", "--max-time", "20", f"http://{SERVER}:{PORT}/")
    assert last_json(result) == MULTIPATH


def test_udp_and_unix_sockets_are_untouched(lab: Lab) -> None:
    code = """
import json, socket
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
raw6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
a.sendall(b"ping")
print(json.dumps({"udp": udp.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
                  "udp6": raw6.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
                  "unix": b.recv(4).decode(), "unix_family": b.family.name}))
"""
    assert last_json(lab.python(code)) == {
        "udp": 17,
        "udp6": 17,
        "unix": "ping",
        "unix_family": "AF_UNIX",
    }


def test_mptcp_disabled_keeps_plain_tcp(lab: Lab) -> None:
    lab.client.sysctl("net.mptcp.enabled", "0")
    report = last_json(
        lab.python("from client import exchange; import json; print(json.dumps(exchange()))")
    )
    assert report == {"proto": 6, "intact": True, "server": {"mptcp": False, "subflows": 0}}


def test_missing_command_exits_127_and_leaves_nothing_running(lab: Lab) -> None:
    missing = f"netpathctl-test-missing-{uuid.uuid4().hex}"
    result = lab.run(missing, "--flag")
    assert result.returncode == 127
    assert result.stderr.strip() == f"netpathctl: {missing}: No such file or directory"
    running = []
    for proc in Path("/proc").iterdir():
        try:
            if missing.encode() in (proc / "cmdline").read_bytes():
                running.append(proc.name)
        except OSError:
            continue
    assert running == []


def test_not_executable_exits_126(lab: Lab) -> None:
    script = lab.programs / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = lab.run(str(script))
    assert result.returncode == 126
    assert result.stderr.strip() == f"netpathctl: {script}: Permission denied"


def test_exit_status_is_the_commands(lab: Lab) -> None:
    assert lab.run("sh", "-c", "exit 3").returncode == 3


def test_sigterm_is_forwarded(lab: Lab) -> None:
    proc = subprocess.Popen(
        lab.run_argv("sh", "-c", "echo ready; exec sleep 60"),
        stdout=subprocess.PIPE,
        text=True,
        env=lab.env(),
    )
    try:
        assert readline(proc.stdout) == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_signal_the_command_handles(lab: Lab) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGUSR1, lambda *_: sys.exit(42))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )
    proc = subprocess.Popen(
        lab.run_argv(sys.executable, "-c", code), stdout=subprocess.PIPE, text=True, env=lab.env()
    )
    try:
        assert readline(proc.stdout) == "ready"
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(TIMEOUT) == 42
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_threads_forks_and_orphans_get_mptcp(lab: Lab) -> None:
    """A second thread, a forked child, and a grandchild that outlives the command."""
    code = """
import json, os, sys, threading
from client import exchange

def report(who, result):
    print(json.dumps({"who": who, **result}), flush=True)

thread = threading.Thread(target=lambda: report("thread", exchange()))
thread.start()
thread.join()
pid = os.fork()
if pid == 0:
    report("child", exchange())
    os._exit(0)
os.waitpid(pid, 0)
parent_gone_r, parent_gone_w = os.pipe()
if os.fork() == 0:
    os.close(parent_gone_w)
    os.read(parent_gone_r, 1)  # EOF once the command itself has exited
    report("orphan", exchange())
    os._exit(0)
sys.exit(7)
"""
    result = lab.python(code)
    assert result.returncode == 7, result.stderr
    reports = {r.pop("who"): r for r in map(json.loads, result.stdout.splitlines())}
    expected = {"proto": 262, "intact": True, "server": MULTIPATH}
    assert reports == {"thread": expected, "child": expected, "orphan": expected}


def test_socket_flags_are_preserved(lab: Lab) -> None:
    code = """
import ctypes, fcntl, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def describe(fd):
    sock = socket.socket(fileno=fd)
    return {"proto": sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
            "nonblock": bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK),
            "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}
both = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
print(json.dumps({
    "plain": describe(libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)),
    "both": describe(libc.socket(socket.AF_INET6, both, socket.IPPROTO_TCP)),
    "nonblock": describe(libc.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0)),
}))
"""
    assert last_json(lab.python(code)) == {
        "plain": {"proto": 262, "nonblock": False, "cloexec": False},
        "both": {"proto": 262, "nonblock": True, "cloexec": True},
        "nonblock": {"proto": 262, "nonblock": True, "cloexec": False},
    }


def test_socket_is_created_in_the_callers_network_namespace(lab: Lab) -> None:
    """A caller that unshare()d its network namespace gets its socket there, still MPTCP."""
    code = """
import ctypes, fcntl, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x40000000) == 0  # CLONE_NEWNET
sock = socket.socket()
sock_ns = fcntl.ioctl(sock.fileno(), 0x894C)  # SIOCGSKNS: an fd of the socket's namespace
print(json.dumps({"proto": sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
                  "same_ns": os.fstat(sock_ns).st_ino == os.stat("/proc/self/ns/net").st_ino}))
"""
    assert last_json(lab.python(code)) == {"proto": 262, "same_ns": True}


def test_nested_run_is_refused_with_125(lab: Lab) -> None:
    result = lab.run(*NETPATHCTL_RUN, "true")
    assert result.returncode == 125
    assert "already under a seccomp listener" in result.stderr


def test_dead_supervisor_fails_socket_instead_of_hanging(lab: Lab) -> None:
    """The command must not hold the listener itself (shared/README.md): if it did, a socket()
    trapped after the supervisor died would wait forever; the kernel fails it with ENOSYS."""
    code = """
import errno, socket, sys
print("ready", flush=True)
sys.stdin.readline()
try:
    socket.socket()
    print("socket", flush=True)
except OSError as exc:
    print(errno.errorcode[exc.errno], flush=True)
"""
    proc = subprocess.Popen(
        lab.run_argv(sys.executable, "-c", code),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=lab.env(),
    )
    try:
        assert readline(proc.stdout) == "ready"
        proc.kill()  # `ip netns exec` exec()s, so this is netpathctl, the supervisor
        proc.wait(TIMEOUT)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert readline(proc.stdout) == "ENOSYS"
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_stopped_and_continued_supervisor_keeps_serving(lab: Lab) -> None:
    """A profiler or Ctrl-Z stopping netpathctl while it installs a socket must not cost the
    command anything: every socket() still returns a new MPTCP socket, never an error, a
    plain TCP socket or a descriptor the program already had (kernel/seccomp.c answers an
    interrupted ADDFD+SEND with 0)."""
    code = """
import errno, fcntl, json, os, socket, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()

def is_open(fd):
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFD) >= 0
    except OSError:
        return False

before = {fd for fd in map(int, os.listdir("/proc/self/fd")) if is_open(fd)}
stats = {"mptcp": 0, "other": [], "errors": []}
print("ready", flush=True)
while not stop.is_set():
    try:
        sock = socket.socket()
    except OSError as exc:
        stats["errors"].append(errno.errorcode.get(exc.errno, str(exc.errno)))
        continue
    if sock.fileno() in before:
        stats["other"].append(sock.fileno())
        sock.detach()  # the program's own descriptor: closing it would hide the next report
        continue
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == 262:
        stats["mptcp"] += 1
    else:
        stats["other"].append("tcp")
    sock.close()
print(json.dumps(stats), flush=True)
"""
    proc = subprocess.Popen(
        lab.run_argv(sys.executable, "-c", code),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=lab.env(),
    )
    try:
        assert readline(proc.stdout) == "ready"
        for _ in range(300):  # `ip netns exec` exec()s, so proc.pid is the supervisor
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.001)
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.002)
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        stats = json.loads(readline(proc.stdout))
        assert proc.wait(TIMEOUT) == 0
        assert stats["errors"] == [] and stats["other"] == [], stats
        assert stats["mptcp"] > 300
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_verbose_reports_each_converted_socket(lab: Lab) -> None:
    code = "import socket; socket.socket().close(); socket.socket(socket.AF_INET6).close()"
    result = subprocess.run(
        lab.client.exec_argv(*NETPATHCTL_RUN[:-1], "-v", "--", sys.executable, "-c", code),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=lab.env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("netpathctl: pid ") and "socket(AF_INET) is MPTCP, fd " in lines[0]
    assert "socket(AF_INET6) is MPTCP, fd " in lines[1]


# What `netpathctl run` must not load: every wrapped program waits for its start-up.
HEAVY = {"argparse", "asyncio", "dbus_fast", "logging", "dataclasses", "typing", "re", "json"}


@pytest.mark.parametrize("argv", [["run", "--", "true"], ["run", "-v", "true"]])
def test_run_loads_no_heavy_module(argv: list[str]) -> None:
    """Through netpathd.ctl.main, as the installed console script starts it."""
    code = (
        "import sys\n"
        "from netpathd.ctl.main import main\n"
        f"code = main({argv!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "raise SystemExit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(DAEMON)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert loaded & HEAVY == set()
    assert not any(name.startswith("netpathd.") and name not in RUN_PATH for name in loaded)


RUN_PATH = {"netpathd.ctl", "netpathd.ctl.main", "netpathd.ctl.run", "netpathd.ctl.mptcpize"}
