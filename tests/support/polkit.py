"""The real polkitd on a test's private bus, as shared/real-components.md measured it.

polkitd's rule and action folders are compiled in, so it runs inside a "holder" mount
namespace (``unshare -m --propagation private``) whose bind mounts put, over the
host's: a test ``rules.d`` (``/etc/polkit-1/rules.d``), an empty folder for the
packaged rules, a folder holding only ``dbus/org.netpathd1.policy`` as the actions,
and copies of ``/etc/passwd`` and ``/etc/group`` with the test users. Nothing of the
host changes. Without logind every subject is neither local nor active, so the
``allow_active`` defaults never apply here: tests grant through rules.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from netpathd.bus.polkit import DNS_CONFIGURE_RUNTIME
from tests.support.bus import PrivateBus, private_bus
from tests.support.dbus_client import add_match
from tests.support.netns import run

ROOT = Path(__file__).resolve().parents[2]
POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT_BUS_POLICY = Path("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf")
NAME = "org.freedesktop.PolicyKit1"
TIMEOUT = 20.0

# name -> uid (= gid): a user with the rules a test writes, one without any.
GRANTED, UNGRANTED = "nprt", "npnone"
TEST_USERS: Mapping[str, int] = {GRANTED: 4711, UNGRANTED: 4712}


@contextmanager
def polkit_bus(holder: Holder) -> Iterator[PrivateBus]:
    """A private bus on which polkitd may own its name, run in the holder.

    dbus-daemon refuses connections from uids it cannot look up (it needs their
    groups), so it must see the holder's passwd with the test users.
    """
    policies = {POLKIT_BUS_POLICY.name: POLKIT_BUS_POLICY.read_text()}
    with private_bus(policies, prefix=holder.enter()) as bus:
        yield bus


def grant(action: str, user: str) -> str:
    """A rules.d file granting ``action`` to ``user`` without authentication."""
    return (
        "polkit.addRule(function(action, subject) {\n"
        f'    if (action.id == "{action}" && subject.user == "{user}")\n'
        "        return polkit.Result.YES;\n"
        "});\n"
    )


@dataclass(frozen=True)
class Holder:
    """The mount namespace with the test users, rules and actions, kept by a sleeping process."""

    directory: Path
    process: subprocess.Popen[str]

    @property
    def rules_dir(self) -> Path:
        return self.directory / "rules.d"

    def enter(self) -> list[str]:
        """The prefix that runs a command in the holder's mounts (nsenter execs it)."""
        return ["nsenter", f"--target={self.process.pid}", "--mount", "--"]


@dataclass
class Polkit:
    """polkitd on ``bus`` in ``holder``, while running."""

    holder: Holder
    bus: PrivateBus
    daemon: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def directory(self) -> Path:
        return self.holder.directory

    @property
    def rules_dir(self) -> Path:
        return self.holder.rules_dir

    async def start(self) -> None:
        """Start polkitd in the holder and return once it owns its name."""
        async with _watching(self.bus.address, "NameOwnerChanged", f"arg0='{NAME}'") as seen:
            self.daemon = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [
                    *self.holder.enter(),
                    "env",
                    f"DBUS_SYSTEM_BUS_ADDRESS={self.bus.address}",
                    str(POLKITD),
                    "--no-debug",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            await asyncio.wait_for(seen.get(), TIMEOUT)

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(timeout=10)
        self.daemon = None

    async def write_rules(self, text: str) -> None:
        """Replace the test rules and return once polkitd has reloaded them."""
        staged = self.directory / "50-test.rules.new"
        staged.write_text(text)
        staged.chmod(0o644)
        async with _watching(
            self.bus.address, "Changed", "interface='org.freedesktop.PolicyKit1.Authority'"
        ) as changed:
            staged.rename(self.rules_dir / "50-test.rules")
            await asyncio.wait_for(changed.get(), TIMEOUT)


@asynccontextmanager
async def _watching(address: str, member: str, extra: str) -> AsyncIterator[asyncio.Queue[None]]:
    """A queue that gets an item for each signal ``member`` matching ``extra``."""
    bus = await MessageBus(bus_address=address).connect()
    queue: asyncio.Queue[None] = asyncio.Queue()

    def on_message(message: Message) -> None:
        if message.message_type is MessageType.SIGNAL and message.member == member:
            queue.put_nowait(None)

    bus.add_message_handler(on_message)
    await add_match(bus, f"type='signal',member='{member}',{extra}")
    try:
        yield queue
    finally:
        bus.disconnect()


def _users_file(host: Path, line: str) -> str:
    text = host.read_text()
    return text + ("" if text.endswith("\n") else "\n") + line


@contextmanager
def polkit_holder() -> Iterator[Holder]:
    """The holder with test users, an empty rules.d and netpathd's actions."""
    for name, uid in TEST_USERS.items():  # the holder's passwd must name them unambiguously
        taken = [
            user.pw_name for user in pwd.getpwall() if name == user.pw_name or uid == user.pw_uid
        ]
        assert not taken, f"test user {name} ({uid}) clashes with {taken[0]} on this host"
    directory = Path(tempfile.mkdtemp(prefix="netpathd-polkit-"))
    directory.chmod(0o755)
    for sub in ("rules.d", "vendor-rules.d", "actions"):
        (directory / sub).mkdir(mode=0o755)
        (directory / sub).chmod(0o755)
    shutil.copy(ROOT / "dbus" / "org.netpathd1.policy", directory / "actions")
    users = "".join(
        f"{name}:x:{uid}:{uid}::/nonexistent:/bin/false\n" for name, uid in TEST_USERS.items()
    )
    groups = "".join(f"{name}:x:{uid}:\n" for name, uid in TEST_USERS.items())
    (directory / "passwd").write_text(_users_file(Path("/etc/passwd"), users))
    (directory / "group").write_text(_users_file(Path("/etc/group"), groups))
    for name in ("passwd", "group"):
        os.chmod(directory / name, 0o644)
    mounts = [
        ("rules.d", "/etc/polkit-1/rules.d"),
        ("vendor-rules.d", "/usr/share/polkit-1/rules.d"),
        ("actions", "/usr/share/polkit-1/actions"),
        ("passwd", "/etc/passwd"),
        ("group", "/etc/group"),
    ]
    script = "".join(f"mount --bind {directory / src} {dst} && " for src, dst in mounts)
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"{script}echo ready && exec sleep infinity"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready", "the polkit holder did not start"
        yield Holder(directory, holder)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def busctl_as(bus: PrivateBus, user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """busctl against ``bus`` as one of TEST_USERS (or "root")."""
    command = ["busctl", f"--address={bus.address}", *argv]
    if user != "root":
        uid = str(TEST_USERS[user])
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
    return run(*command, check=False)


# Fixtures (registered in tests/conftest.py): the holder, a bus in it, polkitd on that bus.


@pytest.fixture
def holder() -> Iterator[Holder]:
    with polkit_holder() as created:
        yield created


@pytest.fixture
def pk_bus(holder: Holder) -> Iterator[PrivateBus]:
    with polkit_bus(holder) as bus:
        yield bus


@pytest.fixture
async def polkit(holder: Holder, pk_bus: PrivateBus) -> AsyncIterator[Polkit]:
    """polkitd running, granting dns.configure-runtime to GRANTED and nothing to UNGRANTED."""
    (holder.rules_dir / "50-test.rules").write_text(grant(DNS_CONFIGURE_RUNTIME, GRANTED))
    started = Polkit(holder, pk_bus)
    await started.start()
    try:
        yield started
    finally:
        started.stop()
