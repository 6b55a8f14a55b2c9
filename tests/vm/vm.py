"""Boot Debian's 6.12 kernel under qemu (TCG) with this machine's root shared read-only.

The build machines refuse trampoline programs, so the TCP->MPTCP program runs only in a VM:
the kernel package from bookworm-backports, extracted into ``.cache/vm/kernel`` by
scripts/setup (never installed), a small initramfs (busybox-static and the 9p modules) that
mounts this machine's ``/`` read-only over virtio-9p, gives it fresh ``/proc``, ``/sys``,
``/dev``, ``/tmp``, ``/run``, cgroup2 and bpffs, and runs one command inside with
``chroot``; the modules the guest needs (veth, sock_diag) are loaded from the initramfs.  A
second 9p share, writable, carries results back.  ``/dev/kvm`` here is PVM, under which stock
kernels die at boot, so the VM runs under TCG: about 11 s to boot (../shared/bpf-mptcpify.md).

In the guest cgroup2 is at ``/run/cgroup2`` and bpffs at ``/run/bpffs``, not under ``/sys``:
``ip netns exec`` mounts a fresh sysfs over ``/sys``, which would hide both.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "vm"
KERNEL_DIR = CACHE / "kernel"
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
# in load order: the 9p share, veth for the tests' network namespaces, sock_diag for ss
INITRAMFS_MODULES = (
    "netfs", "9pnet", "9pnet_virtio", "9p", "veth", "inet_diag", "tcp_diag", "mptcp_diag",
)  # fmt: skip
GUEST_OUT = "/run/vm-out"  # where the writable share is mounted in the guest
CGROUP2 = "/run/cgroup2"
BPFFS = "/run/bpffs"

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in {modules}; do insmod /modules/$module.ko || echo "VM: insmod $module failed"; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
mount -t tmpfs vartmp /host/var/tmp
mkdir -p /host{out} /host{cgroup2} /host{bpffs}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /host{out}
mount -t cgroup2 cgroup2 /host{cgroup2}
mount -t bpf bpf /host{bpffs}
chroot /host /bin/sh -c {command} > /host{out}/console.log 2>&1
echo $? > /host{out}/rc
sync
poweroff -f
"""


@dataclass(frozen=True, slots=True)
class Kernel:
    vmlinuz: Path
    release: str

    @property
    def modules(self) -> Path:
        return KERNEL_DIR / "lib" / "modules" / self.release


def find_kernel() -> Kernel:
    """The extracted 6.12 kernel (scripts/setup puts it there); AssertionError when absent."""
    images = sorted((KERNEL_DIR / "boot").glob("vmlinuz-6.12.*"))
    assert images, f"no Debian 6.12 kernel in {KERNEL_DIR}: run scripts/setup"
    release = images[-1].name.removeprefix("vmlinuz-")
    return Kernel(images[-1], release)


def build_initramfs(kernel: Kernel, command: str, out: Path) -> Path:
    """A gzip'd newc cpio: busybox, the 9p modules (decompressed) and the init script."""
    tree = Path(tempfile.mkdtemp(prefix="netpathd-initramfs-"))
    try:
        for sub in ("bin", "modules", "proc", "sys", "dev"):
            (tree / sub).mkdir()
        shutil.copy(BUSYBOX, tree / "bin" / "busybox")
        for name in INITRAMFS_MODULES:
            (found,) = kernel.modules.rglob(f"{name}.ko.xz")
            (tree / "modules" / f"{name}.ko").write_bytes(lzma.decompress(found.read_bytes()))
        init = tree / "init"
        init.write_text(
            INIT.format(
                modules=" ".join(INITRAMFS_MODULES), out=GUEST_OUT, cgroup2=CGROUP2, bpffs=BPFFS,
                command=shlex.quote(command),
            )
        )  # fmt: skip
        init.chmod(0o755)
        names = "\n".join(str(p.relative_to(tree)) for p in sorted(tree.rglob("*"))) + "\n"
        archive = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=names.encode(),
            capture_output=True, check=True,
        ).stdout  # fmt: skip
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    path = out / "initramfs.cpio.gz"
    path.write_bytes(gzip.compress(archive, compresslevel=1))
    return path


@dataclass(frozen=True, slots=True)
class Boot:
    returncode: int | None  # the command's exit status; None when it never reported one
    console: str  # the command's output
    kernel_log: str  # qemu's serial console: the kernel and init


def boot(command: str, out: Path, *, timeout: float = 600, memory: str = "2048") -> Boot:
    """Run ``command`` (a shell line, in the repository) in the VM; ``out`` is shared rw."""
    kernel = find_kernel()
    initramfs = build_initramfs(kernel, f"cd {shlex.quote(str(ROOT))} && {command}", out)
    argv = [
        QEMU, "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", str(min(os.cpu_count() or 1, 2)),
        "-m", memory, "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs),
        "-append", "console=ttyS0 panic=-1 rdinit=/init loglevel=4",
        "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={out},mount_tag=out,security_model=none",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            check=False, errors="replace",
        )  # fmt: skip
        kernel_log = result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        kernel_log = f"qemu timed out after {timeout}s\n{expired.stdout!r}"
    rc_file, console_file = out / "rc", out / "console.log"
    returncode = int(rc_file.read_text()) if rc_file.exists() else None
    console = console_file.read_text(errors="replace") if console_file.exists() else ""
    return Boot(returncode, console, kernel_log)
