"""The real systemd-resolved for tests, never installed: run from its extracted Debian package.

As measured in ../shared/real-components.md: a "holder" mount namespace inside the client's
network namespace gets a private /run/systemd (tmpfs) and copies of /etc/passwd and
/etc/group that add the `systemd-resolve` user resolved drops to; the private bus runs
inside the holder so that the policy `user="systemd-resolve"` resolves.  `scripts/setup`
extracts the package into .cache/systemd-resolved (apt-get download + dpkg-deb -x):
installing it would rewrite the host's /etc/resolv.conf.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.bus import PrivateBus, private_bus
from tests.support.daemon import log_file
from tests.support.netns import Netns, run

ROOT = Path(__file__).resolve().parents[2]
RESOLVED_ROOT = ROOT / ".cache" / "systemd-resolved"
_DEBIAN_BINARY = RESOLVED_ROOT / "lib/systemd/systemd-resolved"
RESOLVED_BINARY = (
    _DEBIAN_BINARY
    if _DEBIAN_BINARY.exists()
    else RESOLVED_ROOT / "usr/lib/systemd/systemd-resolved"  # Fedora's layout
)
RESOLVED_POLICY = RESOLVED_ROOT / "usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf"
RESOLVED_UID = 64991  # unlikely to be taken on a build host
RESOLVED_CONF = """\
[Resolve]
DNS=
FallbackDNS=
LLMNR=no
MulticastDNS=no
DNSSEC=no
Cache=no
"""


@dataclass
class Holder:
    """The holder process: its mount namespace is where resolved and the bus live."""

    process: subprocess.Popen[str]
    directory: Path  # where the children's stderr files go
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    def argv(self, *command: str) -> list[str]:
        return ["nsenter", "-t", str(self.process.pid), "-m", "-n", "--", *command]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return run(*self.argv(*command))

    def spawn(self, *command: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``command`` in the holder; its stderr in a file (a pipe nobody reads would fill
        with the log of hundreds of links and block it), shown when the test fails."""
        # nsenter execs the command: the Popen pid is the daemon's own, never a shell's.
        with log_file(self.directory, Path(command[0]).name) as stderr:
            child = subprocess.Popen(
                self.argv(*command),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        self.children.append(child)
        return child


def _account_files(directory: Path) -> tuple[Path, Path]:
    passwd, group = directory / "passwd", directory / "group"
    passwd.write_text(
        Path("/etc/passwd").read_text()
        + f"systemd-resolve:x:{RESOLVED_UID}:{RESOLVED_UID}::/run/systemd:/usr/sbin/nologin\n"
    )
    group.write_text(Path("/etc/group").read_text() + f"systemd-resolve:x:{RESOLVED_UID}:\n")
    for path in (passwd, group):
        path.chmod(0o644)
    return passwd, group


@contextmanager
def holder(ns: Netns, directory: Path) -> Iterator[Holder]:
    passwd, group = _account_files(directory)
    resolv = directory / "host-resolv.conf"
    resolv.write_text("# the holder's own resolver file: the host's is never touched\n")
    script = (
        "mount -t tmpfs tmpfs /run/systemd && "
        f"mount --bind {passwd} /etc/passwd && mount --bind {group} /etc/group && "
        f"mount --bind {resolv} /etc/resolv.conf && echo ready && exec sleep infinity"
    )
    process = subprocess.Popen(
        ns.exec_argv("unshare", "-m", "--propagation", "private", "sh", "-c", script),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    held = Holder(process, directory)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "the holder namespace failed"
        # `unshare` forks nothing with these flags: its pid is the shell's, then sleep's.
        yield held
    finally:
        for child in reversed(held.children):
            _stop(child)
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def holder_bus(held: Holder) -> Iterator[PrivateBus]:
    """A private system-like bus inside the holder, with resolved's policy beside ours."""
    policies = {"org.freedesktop.resolve1.conf": RESOLVED_POLICY.read_text()}
    with private_bus(policies, prefix=held.argv()) as bus:
        yield bus


@dataclass
class Resolved:
    held: Holder
    bus: PrivateBus
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}
        self.process = self.held.spawn(str(RESOLVED_BINARY), env=env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def status(self) -> str:
        result = self.held.run(
            "env",
            f"DBUS_SYSTEM_BUS_ADDRESS={self.bus.address}",
            str(RESOLVED_ROOT / "usr" / "bin" / "resolvectl"),
            "--no-pager",
            "status",
        )
        return result.stdout


@contextmanager
def resolved(held: Holder, bus: PrivateBus, *, start: bool = True) -> Iterator[Resolved]:
    """systemd-resolved in the holder on ``bus`` (the stub on 127.0.0.53); started unless not."""
    held.run("mkdir", "-p", "/run/systemd/resolved.conf.d", "/run/systemd/resolve")
    held.run("chown", f"{RESOLVED_UID}:{RESOLVED_UID}", "/run/systemd/resolve")
    held.run(
        "sh", "-c", f"cat > /run/systemd/resolved.conf.d/test.conf <<'EOF'\n{RESOLVED_CONF}EOF"
    )
    instance = Resolved(held, bus)
    if start:
        instance.start()
    try:
        yield instance
    finally:
        if instance.process is not None:
            _stop(instance.process)
