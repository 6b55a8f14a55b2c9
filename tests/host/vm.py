"""The VM tier's runner: a Debian 12 guest with systemd as PID 1 under qemu, steps over 9p.

``tests/host/build-image`` makes (or finds in its cache) the guest image; :func:`run_steps`
boots it with a 9p share holding the .debs, ``guest-steps`` and the list of steps, and reads
back what the guest wrote: its output, its exit status and ``journalctl -b``. The image is
booted with ``snapshot=on`` so every run starts from the same disk. TCG only: /dev/kvm
here is PVM, which qemu cannot use (../shared/vm-host.md).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.packages import run_build_script

HERE = Path(__file__).resolve().parent
QEMU = "qemu-system-x86_64"
# Generous bounds for a loaded 2-core machine: the image build downloads ~170 MB, and the
# guest runs every step under TCG.
IMAGE_TIMEOUT = 1200
BOOT_TIMEOUT = 1500
STEP_LINE = re.compile(r"^STEP (\S+): (ok|FAILED|skipped)(?: \((.*)\))?$", re.MULTILINE)
STARTUP = re.compile(r"Startup finished in .*", re.MULTILINE)


@dataclass
class GuestRun:
    """What one boot of the guest reported."""

    seconds: float
    exit_status: int | None
    output: str
    journal: str
    console: str
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (result, note)

    @property
    def startup(self) -> str:
        found = STARTUP.findall(self.journal)
        return found[0] if found else "no 'Startup finished' in the journal"

    def step_output(self, name: str) -> str:
        match = re.search(
            rf"^STEP {re.escape(name)}: begin$(.*?)^STEP {re.escape(name)}: ",
            self.output,
            re.MULTILINE | re.DOTALL,
        )
        return match.group(1).strip("\n") if match else ""

    def journal_tail(self, lines: int = 150) -> str:
        return "\n".join(self.journal.splitlines()[-lines:])

    def daemon_journal(self, lines: int = 80) -> str:
        """netpathd's own lines and systemd's about its unit."""
        # Every line names the host, netpathd-vm: match the daemon, its unit and its bus name.
        marks = ("netpathd[", "netpathd.service", "org.netpathd1")
        own = [line for line in self.journal.splitlines() if any(m in line for m in marks)]
        return "\n".join(own[-lines:])


def qemu_missing() -> str | None:
    """Why the tier cannot run here, or None."""
    for tool in (QEMU, "mmdebstrap", "mke2fs"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup installs it with apt-get or dnf)"
    return None


def build_image() -> tuple[Path, float]:
    """The cached image's folder, and how long getting it took."""
    begin = time.monotonic()
    image = run_build_script(HERE / "build-image", timeout=IMAGE_TIMEOUT)
    return image, time.monotonic() - begin


def run_steps(image: Path, debs: dict[str, Path], steps: list[str], share: Path) -> GuestRun:
    """Boot the guest once, run ``steps`` in order, and return what it reported.

    ``debs`` maps the names ``guest-steps`` reads in the share to the packages.
    """
    share.mkdir(parents=True, exist_ok=True)
    for name, deb in debs.items():
        shutil.copy(deb, share / name)
    shutil.copy(HERE / "guest-steps", share / "guest-steps")
    (share / "steps").write_text("".join(f"{name}\n" for name in steps), encoding="utf-8")
    console = share / "console.log"
    command = [
        QEMU,
        "-accel", "tcg,thread=multi",
        "-cpu", "max",
        "-smp", "2",
        "-m", "2048",
        "-kernel", str(image / "vmlinuz"),
        "-initrd", str(image / "initrd.img"),
        "-append", "root=/dev/vda rw console=ttyS0 quiet panic=-1",
        "-drive", f"file={image / 'root.img'},if=virtio,format=raw,snapshot=on",
        "-virtfs",
        f"local,path={share},mount_tag=share,security_model=none,multidevs=remap",
        "-nic", "none",
        "-nographic",
        "-no-reboot",
        "-serial", f"file:{console}",
        "-monitor", "none",
    ]  # fmt: skip
    begin = time.monotonic()
    # On timeout subprocess.run kills qemu; the missing status file then says so.
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=BOOT_TIMEOUT,
            check=False,
        )
    seconds = time.monotonic() - begin

    def read(name: str) -> str:
        path = share / name
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    status = read("status").strip()
    run = GuestRun(
        seconds=seconds,
        exit_status=int(status) if status.isdigit() else None,
        output=read("output.log"),
        journal=read("journal.log"),
        console=read("console.log"),
    )
    run.steps = {name: (result, note or "") for name, result, note in STEP_LINE.findall(run.output)}
    return run
