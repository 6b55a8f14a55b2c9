"""What netpathd has imported when it says READY=1, and for ``netpathd --help`` (issue 13).

D-Bus activation makes the first caller wait for READY=1, and every module imported by then
costs start-up time and resident memory for the daemon's whole life.  So modules that only a
configured feature or a later call needs must stay out until then: the whole of pyroute2's
socket machinery (``nlsocket`` pulls in multiprocessing, pickle and json) and its 20 link-kind
plugins, the BPF loader and the BTF walk behind the TCP->MPTCP probe, cgroups, sock_diag, the
dnsmasq and systemd-resolved back-ends.  The daemon runs as in production, in its own network
namespace on a private bus, with a stand-in for ``sd_notify`` that writes ``sys.modules`` to a
file just before it passes READY=1 on.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from dbus_fast import Variant

from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, daemon_argv, daemon_env, log_file
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

MODULES_AT_READY = """
import gc, os, sys
from netpathd import service_manager

forward = service_manager.notify

def notify(*assignments):
    if "READY=1" in assignments:
        with open(os.environ["MODULES_AT_READY"], "w") as listing:
            loaded = (name for name, module in sys.modules.items() if module is not None)
            listing.write("\\n".join(sorted(loaded)))
            listing.write("\\ngc-enabled" if gc.isenabled() else "")
    forward(*assignments)

service_manager.notify = notify
from netpathd.app import main
raise SystemExit(main())
"""

NOT_BEFORE_READY = (
    "pyroute2.netlink.nlsocket",
    "pyroute2.netlink.rtnl.ifinfmsg",
    "multiprocessing",
    "pickle",
    "json",
    "netpathd.kernel.bpf_probe",
    "netpathd.kernel.bpf_syscall",
    "netpathd.kernel.btf",
    "netpathd.kernel.mptcpify_link",
    "netpathd.kernel.cgroups",
    "ctypes",
    "netpathd.kernel.mptcp_diag",
    "netpathd.kernel.sockets_owner",
    "netpathd.dns_backends.dnsmasq",
    "netpathd.dns_backends.resolved",
    "netpathd.dns_backends.base",  # what the pushing back-ends share: dns=default writes a file
    "netpathd.model.split_dns",  # domain routes: only a routing mode or ExplainDomains reads them
    "netpathd.model.dns_routes",
    "tempfile",  # with random; a start that writes nothing needs no temporary file
    "difflib",  # "did you mean" of a refusal
    "shutil",  # with zlib, bz2, lzma: argparse's help width (command_line.build_parser)
    "netpathd.dns_resolvconf",  # the first AddResolvconf or RemoveResolvconf (bus/dns.py)
    "netpathd.kernel.ifindex",
    "netpathd.model.ra_dns",  # the RA parser and its table: the first RA (dns_ra)
    "netpathd.model.resolvconf",  # the resolvconf language: the first record call
    "netpathd.model.tcp_to_mptcp_maps",  # what a TCP->MPTCP scope writes: once one is applied
    "netpathd.model.mptcp_auto",  # automatic endpoints: only with [auto] in mptcp.conf
    "netpathd.model.mptcp_auto_config",
    "netpathd.mptcp_apps",  # per-service drop-ins: the first EnableApp, ListApps or RegisterApp
    "ssl",  # netpathd speaks no TLS: OpenSSL is 5 MiB of libssl and libcrypto (app.main)
    "_ssl",
    "_hashlib",
    "argparse",  # with gettext: the unit's fixed argv needs neither (command_line.usual_options)
    "gettext",
)

NOT_FOR_HELP = ("asyncio", "dbus_fast", "pyroute2", "netpathd.dns_manager", "netpathd.kernel")


def start_listing(
    ns: Netns, bus: PrivateBus, workdir: Path, config: dict[str, str]
) -> tuple[Daemon, Path]:
    """The daemon with ``config`` (file name -> text), writing its modules at READY=1."""
    for sub in ("config", "state"):
        (workdir / sub).mkdir()
    for name, text in config.items():
        (workdir / "config" / name).write_text(text)
    argv = daemon_argv(ns, bus.address, workdir)
    at = argv.index(sys.executable) + 1
    argv[at : at + 2] = ["-c", MODULES_AT_READY]  # instead of "-m netpathd"
    listing = workdir / "modules"
    notify_path = tempfile.mktemp(prefix="netpathd-notify-", dir=workdir)  # noqa: S306
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    env = {**daemon_env(), "NOTIFY_SOCKET": notify_path, "MODULES_AT_READY": str(listing)}
    with log_file(workdir, "netpathd") as stderr:
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    return Daemon(process, workdir, notify, Path(stderr.name)), listing


def listing_at_ready(
    ns: Netns, bus: PrivateBus, workdir: Path, config: dict[str, str]
) -> tuple[set[str], str]:
    """The modules loaded at READY=1 and what the daemon logged until it stopped."""
    daemon, listing = start_listing(ns, bus, workdir, config)
    try:
        daemon.wait_notify("READY=1")
        modules = set(listing.read_text().split())
    finally:
        stderr = daemon.stop()
        daemon.notify.close()
    return modules, stderr


@pytest.fixture
def modules_at_ready(ns: Netns, bus: PrivateBus, tmp_path: Path) -> set[str]:
    return listing_at_ready(ns, bus, tmp_path, {})[0]


def test_ready_without_the_modules_only_later_calls_need(modules_at_ready: set[str]) -> None:
    assert "netpathd.app" in modules_at_ready  # the listing is the daemon's
    loaded = [name for name in NOT_BEFORE_READY if name in modules_at_ready]
    assert loaded == []


def test_automatic_endpoints_load_with_their_section(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    modules, _ = listing_at_ready(ns, bus, tmp_path, {"mptcp.conf": "[auto]\n"})
    assert {"netpathd.model.mptcp_auto", "netpathd.model.mptcp_auto_config"} <= modules


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("[auto]\nflags = bogus\n", "mptcp.conf:2: unknown flag 'bogus'"),
        ('[auto "eth1"]\n', "mptcp.conf:1: automatic endpoints are off without an [auto] section"),
    ],
)
def test_a_bad_auto_section_is_still_refused_at_start(
    ns: Netns, bus: PrivateBus, tmp_path: Path, text: str, refusal: str
) -> None:
    _, stderr = listing_at_ready(ns, bus, tmp_path, {"mptcp.conf": text})
    assert f"MPTCP configuration not loaded: {tmp_path / 'config' / refusal}" in stderr


def test_the_collector_runs_again_once_ready(modules_at_ready: set[str]) -> None:
    """It is off while the daemon starts (app.main): a daemon left without it would leak."""
    assert "gc-enabled" in modules_at_ready


def test_help_imports_neither_the_bus_nor_the_kernel_adapters() -> None:
    script = (
        "import sys\nfrom netpathd.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**daemon_env(), "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = set(result.stdout.split())
    assert "argparse" in modules
    assert [name for name in NOT_FOR_HELP if name in modules] == []


def test_ready_without_openssl_mapped(daemon: Daemon) -> None:
    libraries = {
        Path(line.split()[-1]).name
        for line in Path(f"/proc/{daemon.process.pid}/maps").read_text().splitlines()
        if line.count(" ") >= 5 and "/" in line
    }
    assert "netpathd" in Path(f"/proc/{daemon.process.pid}/cmdline").read_text()
    assert any(name.startswith("libpython") or "python" in name for name in libraries)
    assert [name for name in libraries if name.startswith(("libssl", "libcrypto"))] == []


NETPATHCTL_WITHOUT_OPENSSL = """
import sys
from netpathd.ctl.main import main

code = main(sys.argv[1:])
loaded = [name for name in ("ssl", "_hashlib") if sys.modules.get(name) is not None]
mapped = [line for line in open("/proc/self/maps") if "libssl" in line or "libcrypto" in line]
print(code, "asyncio" in sys.modules, loaded, len(mapped))
"""


def test_netpathctl_talks_to_the_daemon_without_openssl(daemon: Daemon, bus: PrivateBus) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NETPATHCTL_WITHOUT_OPENSSL,
            f"--bus-address={bus.address}",
            "dns",
            "show",
        ],
        env={**daemon_env(), "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.splitlines()[-1] == "0 True [] 0", result.stderr


async def test_a_long_connection_name_still_gets_its_sha256_file(
    daemon: Daemon, bus: PrivateBus
) -> None:
    """Without OpenSSL's _hashlib, hashlib's SHA-256 is CPython's own: the same file name."""
    name = "Büro-" + "ü" * 40  # escaped, 245 characters: too long for the name itself
    settings = {
        "connection.interface-name": Variant("s", "lo"),
        "connection.type": Variant("s", "ethernet"),
        "ipv4.dns": Variant("as", ["192.0.2.53"]),
    }
    async with bus_client(bus.address) as client:
        await client.call("org.netpathd1.Dns", "SetConnection", "sa{sv}", [name, settings])
    digest = hashlib.sha256(name.encode()).hexdigest()
    written = [path.name for path in (daemon.state_dir / "dns-connections").iterdir()]
    assert written == [f"+{digest}.conf"]


def test_help_still_wraps_at_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser is built with a fixed-width formatter (no shutil), but prints with argparse's."""
    from netpathd.command_line import build_parser  # noqa: PLC0415 - as the help test: no daemon import

    usage_lines = {}
    for columns in (60, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        usage = build_parser().format_help().split("\n\n")[0]
        usage_lines[columns] = len(usage.splitlines())
        assert max(len(line) for line in usage.splitlines()) <= columns
    assert usage_lines[60] > usage_lines[200]
