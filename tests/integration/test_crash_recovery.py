"""A netpathd killed (SIGKILL) at any step knows its endpoints again and leaves no litter.

The daemon is stopped exactly between two steps without a hook in its code:
strace kills it as its atomic writer first touches the file the next step
writes, with every earlier step done (``killed_while_writing``).  The kernel is
the witness afterwards (``ip mptcp endpoint show``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_mptcp_bus import connected, endpoints
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon, start_daemon
from tests.support.dbus_client import TIMEOUT, CallError
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

ADD = ["192.0.2.5", ["subflow"], "", 0, 0]


@asynccontextmanager
async def killed_while_writing(daemon: Daemon, path: Path) -> AsyncIterator[None]:
    """Run the body's call, SIGKILL the daemon as it opens ``path`` to write it.

    strace's fault injection delivers the signal on entry to the first stat of
    that path or write to it: ``replace_atomic`` begins with the ``lstat`` that
    keeps the file's mode, and never opens the file itself (strace 6.1's ``-P``
    does not see a rename's target); the applied record is appended with one
    ``write()`` to the file kept open (``-P`` follows descriptors).  So the kill
    lands exactly between the steps before and after that write, with no hook in
    netpathd.
    """
    pid = daemon.process.pid
    threads = len(os.listdir(f"/proc/{pid}/task"))
    writes = "%fstat,statx,write"  # glibc's lstat() is newfstatat(), or statx() in some builds
    tracer = await asyncio.create_subprocess_exec(
        "strace", "-f", "-p", str(pid), "-P", str(path),
        "-e", f"trace={writes}", "-e", f"inject={writes}:signal=SIGKILL", "-o", "/dev/null",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert tracer.stderr is not None
    try:
        for _ in range(threads):  # "strace: Process N attached", one line a thread
            line = await asyncio.wait_for(tracer.stderr.readline(), TIMEOUT)
            assert b"attached" in line, line
        yield
        try:
            await asyncio.wait_for(asyncio.to_thread(daemon.process.wait), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"the daemon never started writing {path}") from None
    finally:
        if tracer.returncode is None:
            tracer.terminate()
        await tracer.wait()


Call = tuple[str, str, list[Any]]  # member, signature, body


def state_file(daemon: Daemon) -> Path:
    """What D-Bus callers persisted: written before the kernel sees an add."""
    return daemon.state_dir / "mptcp.conf"


def applied_record(daemon: Daemon) -> Path:
    """The record of what netpathd put into the kernel, written before it does."""
    return daemon.runtime_dir / "mptcp-applied.conf"


async def _call_until_killed(bus: PrivateBus, daemon: Daemon, path: Path, call: Call) -> None:
    member, signature, body = call
    async with connected(bus) as client:
        async with killed_while_writing(daemon, path):
            reply = asyncio.ensure_future(client.call(member, signature, body))
        with pytest.raises((CallError, TimeoutError)):  # no reply: the daemon died mid-call
            await reply


async def test_add_endpoint_killed_before_the_persist_leaves_no_orphan(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    """Killed before the state file says so, the add never happened, in the kernel either.

    (Killed after the state file and before the kernel, the add is committed:
    the start adds what the state file lists, as after a flush behind its back.)
    """
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        await _call_until_killed(bus, daemon, state_file(daemon), ("AddEndpoint", "sassqu", ADD))
    finally:
        daemon.stop()
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == ""
        async with connected(bus) as client:
            (new_id,) = await client.call("AddEndpoint", "sassqu", ADD)  # no AlreadyExists
            assert endpoints(ns) == f"192.0.2.5 id {new_id} subflow \n"


async def test_add_endpoint_killed_after_the_reply_keeps_it_as_its_own(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        async with connected(bus) as client:
            (new_id,) = await client.call("AddEndpoint", "sassqu", ADD)
        daemon.process.kill()
    finally:
        daemon.stop()
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == f"192.0.2.5 id {new_id} subflow \n"
        async with connected(bus) as client:
            await client.call("RemoveEndpoint", "u", [new_id])
        assert endpoints(ns) == ""
    with running_daemon(ns, bus, tmp_path):  # and it stays removed
        assert endpoints(ns) == ""


@pytest.mark.parametrize("after_reply", [False, True], ids=["mid-call", "after-reply"])
@pytest.mark.parametrize("earlier", [False, True], ids=["first", "appended"])
async def test_runtime_endpoint_never_survives_a_kill(
    ns: Netns, bus: PrivateBus, tmp_path: Path, after_reply: bool, earlier: bool
) -> None:
    """``earlier``: another runtime endpoint was added first, so the record of this one
    is appended to the file that add wrote, not written anew (files/record_log.py)."""
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        if earlier:
            async with connected(bus) as client:
                await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.6", [], "", 0, 9])
        if after_reply:
            async with connected(bus) as client:
                (new_id,) = await client.call("AddEndpointRuntime", "sassqu", ADD)
            assert f"192.0.2.5 id {new_id} subflow \n" in endpoints(ns)
            daemon.process.kill()
        else:
            await _call_until_killed(
                bus, daemon, applied_record(daemon), ("AddEndpointRuntime", "sassqu", ADD)
            )
    finally:
        daemon.stop()
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == ""
        async with connected(bus) as client:
            await client.call("AddEndpointRuntime", "sassqu", ADD)


async def test_reload_killed_before_recording_an_admin_endpoint_leaves_no_orphan(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    """An endpoint the administrator's file brought in and then lost is still netpathd's."""
    admin = tmp_path / "config" / "mptcp.conf"
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        async with connected(bus) as client:
            async with killed_while_writing(daemon, applied_record(daemon)):
                admin.write_text('[endpoint "192.0.2.7"]\nflags = subflow\n')
                reload = asyncio.ensure_future(
                    client.client.call("org.netpathd1.Manager", "Reload")
                )
            with pytest.raises((CallError, TimeoutError)):
                await reload
    finally:
        daemon.stop()
    admin.unlink()  # the administrator changes their mind while netpathd is down
    with running_daemon(ns, bus, tmp_path):
        assert endpoints(ns) == ""


@pytest.mark.parametrize(
    "call",
    [("RemoveEndpoint", "u", [1]), ("SetEndpointFlags", "uas", [1, ["backup"]]),
     ("FlushEndpoints", "", [])],
    ids=["remove", "flags", "flush"],
)  # fmt: skip
async def test_a_change_killed_before_its_persist_is_undone(
    ns: Netns, bus: PrivateBus, tmp_path: Path, call: Call
) -> None:
    """Killed inside the state file's write, the change never happened (after a restart)."""
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        async with connected(bus) as client:
            await client.call("AddEndpoint", "sassqu", ADD)
            await client.call("AddEndpointRuntime", "sassqu", ["192.0.2.6", [], "", 0, 0])
        await _call_until_killed(bus, daemon, state_file(daemon), call)
    finally:
        daemon.stop()
    with running_daemon(ns, bus, tmp_path):
        address, _, new_id, flags = endpoints(ns).split()  # as persisted; runtime gone
        assert (address, flags) == ("192.0.2.5", "subflow")
        member, signature, body = call
        async with connected(bus) as client:  # the retry works: the endpoint is netpathd's
            await client.call(member, signature, [int(new_id), *body[1:]] if body else [])


async def test_flags_of_someone_elses_endpoint_killed_before_the_persist_stay_theirs(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    """SetEndpointFlags adopts an endpoint: killed before that commits, nothing changed."""
    ns.ip("mptcp", "endpoint", "add", "203.0.113.7", "id", "20", "subflow")
    daemon = start_daemon(ns, bus, tmp_path)
    try:
        await _call_until_killed(
            bus, daemon, state_file(daemon), ("SetEndpointFlags", "uas", [20, ["backup"]])
        )
    finally:
        daemon.stop()
    assert endpoints(ns) == "203.0.113.7 id 20 subflow \n"
    with running_daemon(ns, bus, tmp_path):
        async with connected(bus) as client:
            await client.call("SetEndpointFlags", "uas", [20, ["backup"]])
    ns.ip("mptcp", "endpoint", "change", "id", "20", "nobackup")
    with running_daemon(ns, bus, tmp_path):  # adopted now: the start restores its flags
        assert endpoints(ns) == "203.0.113.7 id 20 subflow backup \n"


def test_the_record_an_older_version_kept_in_the_state_dir_still_counts(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    """Upgraded across a restart: the old record moves to the runtime dir, and the
    runtime-only endpoint it lists is taken back like any other."""
    ns.ip("mptcp", "endpoint", "add", "192.0.2.5", "id", "5", "subflow")
    ns.ip("mptcp", "endpoint", "add", "203.0.113.7", "id", "20", "subflow")  # someone else's
    (tmp_path / "state").mkdir()
    old = tmp_path / "state" / "mptcp-applied.conf"
    old.write_text('[endpoint "192.0.2.5"]\n')
    with running_daemon(ns, bus, tmp_path) as daemon:
        assert endpoints(ns) == "203.0.113.7 id 20 subflow \n"
        assert not old.exists()
        assert applied_record(daemon).exists()


STALE = [  # what write_atomic leaves when killed: ".NAME." + mkstemp's 8 characters + ".tmp"
    "state/.mptcp.conf.k2j_h4g5.tmp",
    "run/.mptcp-applied.conf.x1y2z3w4.tmp",
    "state/.mptcp-applied.conf.a1b2c3d4.tmp",  # where netpathd kept the record before
    "state/.dns.conf.abcdefgh.tmp",
    "state/.resolv.conf.00000000.tmp",  # the private copy
    ".resolv.conf.q9w8e7r6.tmp",  # beside the resolver file (/etc or /run on a host)
]
LOOK_ALIKES = [  # not netpathd's: an admin's, another program's, or not a temporary file
    ".resolv.conf.tmp",
    ".resolv.conf.ABCDEFGH.tmp",
    ".resolv.conf.abcdefghi.tmp",
    ".resolv.conf.abcdefgh.tmp.bak",
    "resolv.conf.abcdefgh.tmp",
    ".hosts.abcdefgh.tmp",
    "state/.mptcp.conf.orig",
    "state/.netpathd.conf.abcdefgh.tmp",
]


def test_temporary_files_of_a_killed_daemon_are_removed_at_start(
    ns: Netns, bus: PrivateBus, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "run").mkdir()
    for name in STALE + LOOK_ALIKES:
        (tmp_path / name).write_text("half-written\n")
    (tmp_path / "state" / ".dns.conf.zzzzzzzz.tmp").mkdir()  # a directory is not ours
    (tmp_path / "state" / ".mptcp.conf.yyyyyyyy.tmp").symlink_to("mptcp.conf")  # nor a symlink
    with running_daemon(ns, bus, tmp_path):
        for name in STALE:
            assert not (tmp_path / name).exists(), name
        for name in LOOK_ALIKES:
            assert (tmp_path / name).read_text() == "half-written\n", name
        assert (tmp_path / "state" / ".dns.conf.zzzzzzzz.tmp").is_dir()
        assert (tmp_path / "state" / ".mptcp.conf.yyyyyyyy.tmp").is_symlink()
