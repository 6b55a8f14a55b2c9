"""The probe: every "why not" answer, and this machine's own refusal."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from pathlib import Path

import pytest

from netpathd.kernel import bpf_probe, bpf_syscall
from netpathd.kernel.bpf_mptcpify import NetnsOffsets, no_opinion_program
from netpathd.kernel.bpf_probe import ENOTSUPP, Hook, probe, probe_in_loop
from tests.support.btf_blob import kernel_like

Attr = ctypes.Array[ctypes.c_char]


def test_no_btf_is_a_reason(tmp_path: Path) -> None:
    result = probe(tmp_path / "vmlinux")
    assert not result.available and result.hook is None
    assert str(result) == f"unavailable: the kernel has no BTF ({tmp_path / 'vmlinux'} missing)"


def test_kernel_without_the_function(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(kernel_like(with_function=False))
    result = str(probe(tmp_path / "vmlinux"))
    assert result.startswith("unavailable: the kernel (")
    assert "has no update_socket_protocol() (Linux 6.6+ with CONFIG_MPTCP)" in result


def refusing(error_number: int, log: bytes = b"") -> tuple[list[int], object]:
    seen: list[int] = []

    def refuse(cmd: int, attr: Attr) -> int:
        seen.append(struct.unpack_from("=I", attr, 108)[0])
        log_address = struct.unpack_from("=Q", attr, 32)[0]
        ctypes.memmove(log_address, log + b"\0", len(log) + 1)
        raise OSError(error_number, os.strerror(error_number))

    return seen, refuse


def test_eperm_is_reported_before_the_walk_with_an_empty_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinux").write_bytes(kernel_like())
    seen, refuse = refusing(errno.EPERM)
    monkeypatch.setattr(bpf_syscall, "bpf", refuse)
    assert str(probe(tmp_path / "vmlinux")) == (
        "unavailable: the kernel refused to load the fmod_ret program for "
        "update_socket_protocol: EPERM (Operation not permitted) - lockdown, a BPF LSM or "
        "policy, or no CAP_BPF/CAP_PERFMON; the verifier log is empty"
    )
    assert seen == [0]  # refused before the BTF walk: tracing programs are refused at all


def test_a_verifier_refusal_quotes_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vmlinux").write_bytes(kernel_like())
    seen, refuse = refusing(errno.EINVAL, b"attach_btf_id 9 is not a function\n")
    monkeypatch.setattr(bpf_syscall, "bpf", refuse)
    result = str(probe(tmp_path / "vmlinux"))
    assert result.endswith("EINVAL (Invalid argument); verifier: attach_btf_id 9 is not a function")
    assert seen == [0, 11]  # the pre-check, then the FUNC's id from the walk


class PermissiveKernel:
    """Accepts loads of the do-nothing program; `attach_errno` refuses BPF_LINK_CREATE."""

    def __init__(self, attach_errno: int = 0) -> None:
        self.attach_errno = attach_errno
        self.calls: list[tuple[int, int]] = []
        self.open_fds: set[int] = set()

    def __call__(self, cmd: int, attr: Attr) -> int:
        if cmd == bpf_syscall.BPF_PROG_LOAD:
            count, insns = struct.unpack_from("=IQ", attr, 4)
            assert ctypes.string_at(insns, count * 8) == no_opinion_program()
            attach_btf_id = struct.unpack_from("=I", attr, 108)[0]
            self.calls.append((cmd, attach_btf_id))
            if attach_btf_id == 0:  # a kernel that allows tracing wants a target
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        else:
            assert cmd == bpf_syscall.BPF_LINK_CREATE
            self.calls.append((cmd, struct.unpack_from("=I", attr, 8)[0]))
            if self.attach_errno:
                raise OSError(self.attach_errno, "Unknown error 524")
        fd = os.open("/dev/null", os.O_RDONLY)
        self.open_fds.add(fd)
        return fd

    def leaked(self) -> set[int]:
        return {fd for fd in self.open_fds if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_kernel_that_allows_it_loads_attaches_and_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinux").write_bytes(kernel_like())
    kernel = PermissiveKernel()
    monkeypatch.setattr(bpf_syscall, "bpf", kernel)
    result = probe(tmp_path / "vmlinux")
    assert str(result) == "available"
    assert result.hook == Hook(11, NetnsOffsets(1840, 40, 168))
    assert kernel.calls == [
        (bpf_syscall.BPF_PROG_LOAD, 0),
        (bpf_syscall.BPF_PROG_LOAD, 11),
        (bpf_syscall.BPF_LINK_CREATE, bpf_syscall.BPF_MODIFY_RETURN),
    ]
    assert kernel.leaked() == set()


def test_a_refused_attach_is_a_reason_and_closes_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinux").write_bytes(kernel_like())
    kernel = PermissiveKernel(attach_errno=ENOTSUPP)
    monkeypatch.setattr(bpf_syscall, "bpf", kernel)
    assert str(probe(tmp_path / "vmlinux")) == (
        "unavailable: the kernel refused to attach the fmod_ret program for "
        "update_socket_protocol: ENOTSUPP (Unknown error 524) - no BPF trampolines on this "
        "kernel or architecture; the verifier log is empty"
    )
    assert kernel.leaked() == set()


@pytest.mark.skipif(
    not bpf_probe.VMLINUX_BTF.exists() or os.geteuid() != 0, reason="needs root and BTF"
)
def test_this_machine_refuses_trampolines_with_eperm_and_an_empty_log() -> None:
    """Measured on these build machines (a BPF-LSM policy); in the VM the probe says yes."""
    result = probe()
    assert not result.available
    assert "refused to load the fmod_ret program for update_socket_protocol: EPERM" in str(result)
    assert result.reason.endswith("the verifier log is empty")


async def test_the_daemons_stepwise_probe_answers_like_the_direct_one() -> None:
    assert str(await probe_in_loop()) == str(probe())
