"""A private dbus-daemon with system-bus semantics and the project's own policy.

The socket lives in a world-traversable temporary directory so that tests can
also talk to the bus as an unprivileged user (``setpriv``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.netns import run

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "scripts" / "private-bus.conf.in"
POLICY = ROOT / "dbus" / "org.netpathd1.conf"


@dataclass(frozen=True)
class PrivateBus:
    directory: Path
    process: subprocess.Popen[str]

    @property
    def address(self) -> str:
        return f"unix:path={self.directory}/bus.socket"

    @property
    def service_dir(self) -> Path:
        return self.directory / "services"

    def busctl_result(
        self, *argv: str, unprivileged: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """busctl against this bus, as root or as nobody (uid/gid 65534)."""
        command = ["busctl", f"--address={self.address}", *argv]
        if unprivileged:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        return run(*command, check=False)

    def busctl(self, *argv: str, unprivileged: bool = False) -> str:
        result = self.busctl_result(*argv, unprivileged=unprivileged)
        assert result.returncode == 0, f"busctl {' '.join(argv)}: {result.stderr}"
        return result.stdout


def write_bus_config(directory: Path, extra_policies: Mapping[str, str] | None = None) -> Path:
    """Lay out config, policy folder and service folder for a private bus in ``directory``.

    ``extra_policies`` (file name -> busconfig XML) go beside the project's own policy, for a
    test that serves a fake of another service (tests/support/fake_systemd.py).
    """
    (directory / "system.d").mkdir()
    (directory / "services").mkdir()
    shutil.copy(POLICY, directory / "system.d" / POLICY.name)
    for name, text in (extra_policies or {}).items():
        (directory / "system.d" / name).write_text(text)
    config = directory / "bus.conf"
    config.write_text(TEMPLATE.read_text().replace("@DIR@", str(directory)))
    return config


@contextmanager
def private_bus(
    extra_policies: Mapping[str, str] | None = None, prefix: Sequence[str] = ()
) -> Iterator[PrivateBus]:
    """``prefix``: a command that execs the dbus-daemon elsewhere (tests/support/polkit.py)."""
    directory = Path(tempfile.mkdtemp(prefix="netpathd-bus-"))
    directory.chmod(0o755)
    config = write_bus_config(directory, extra_policies)
    process = subprocess.Popen(
        [
            *prefix,
            "dbus-daemon",
            f"--config-file={config}",
            "--nofork",
            "--nopidfile",
            "--print-address",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C in a terminal reaches only the test or sandbox
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()  # printed once the socket listens
        assert address, "dbus-daemon did not start"
        yield PrivateBus(directory, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
