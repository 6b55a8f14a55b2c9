"""scripts/sandbox as a new user runs it: standalone, serving as long as it is used, and
leaving nothing behind."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ctl import netpathctl
from tests.support.dbus_client import bus_client

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "scripts" / "sandbox"
START_TIMEOUT = 180.0  # scripts/setup runs first; generous on a loaded machine
PIPE_BUFFER = 64 * 1024  # what the old sandbox's unread stderr pipe held before it hung


def test_sandbox_uses_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "scripts" / "sandbox.py").read_text())
    modules = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    top_level = {module.split(".")[0] for module in modules}
    assert top_level <= {*sys.stdlib_module_names, "__future__"}, top_level


def read_banner(proc: subprocess.Popen[bytes]) -> str:
    """The sandbox's stdout up to its "Press Ctrl-C" line (read raw: select() on a buffered
    reader misses what the buffer already holds)."""
    assert proc.stdout is not None
    text = b""
    while b"Press Ctrl-C" not in text:
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        assert ready, f"no banner within {START_TIMEOUT}s: {text!r}"
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, f"the sandbox exited ({proc.wait()}): {text!r}"
        text += chunk
    return text.decode()


async def reload_until_logged(address: str, log: Path, size: int) -> int:
    """Reload() logs one line each time: call it until the log has grown past `size`."""
    calls = 0
    async with bus_client(address) as client:
        while await asyncio.to_thread(os.path.getsize, log) <= size:
            await asyncio.gather(
                *(client.call("org.netpathd1.Manager", "Reload") for _ in range(20))
            )
            calls += 20
            assert calls <= 20000, "Reload() does not log any more"
    return calls


@pytest.mark.integration
def test_sandbox_outlasts_64_kib_of_log_and_cleans_up(tmp_path: Path) -> None:
    log = tmp_path / "netpathd.log"
    with (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen(
            [str(SANDBOX), f"--log-file={log}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        banner = read_banner(proc)
        address = re.search(r"export NETPATHD_BUS_ADDRESS=(\S+)", banner)
        pid = re.search(r"netpathd is running \(pid (\d+)\) in network namespace (\S+)", banner)
        drop_ins = re.search(r"Unit drop-ins: (\S+)", banner)
        assert address and pid and drop_ins, banner
        cmdline = Path(f"/proc/{pid[1]}/cmdline").read_bytes().decode().split("\0")
        assert f"--systemd-dir={drop_ins[1]}" in cmdline  # never the host's /etc/systemd/system
        assert not drop_ins[1].startswith("/etc")

        calls = asyncio.run(reload_until_logged(address[1], log, 2 * PIPE_BUFFER))
        status = netpathctl(address[1], "status")
        assert status.returncode == 0, status.stderr
        assert calls > 0 and "configuration reloaded" in log.read_text()

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:  # SIGTERM first: the sandbox removes what it made
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
    errors = (tmp_path / "stderr").read_text()
    assert "Traceback" not in errors, errors
    if "Failed to set fd limit" in errors:
        assert "note: dbus-daemon will log" in errors  # the line is explained, not left bare
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert pid[2] not in namespaces.split()
    assert not Path(f"/proc/{pid[1]}").exists()
    assert not Path(drop_ins[1]).parent.exists()
