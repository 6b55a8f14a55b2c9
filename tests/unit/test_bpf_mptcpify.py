"""The BPF-mode probe: BTF walk, the hand-assembled program, and every "why not" answer.

The program is checked twice: an interpreter of the five opcodes it uses runs it over the
truth table of the kernel's selftest progs/mptcpify.c, and (as root) the kernel's verifier
accepts the same instructions as a kprobe program, which this machine allows while it
refuses tracing programs with EPERM.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import struct
from pathlib import Path

import pytest

from netpathd.kernel import bpf_mptcpify
from netpathd.kernel.bpf_mptcpify import PROGRAM, BtfError, find_func, probe, probe_in_loop

AF_INET, AF_INET6, AF_UNIX = 2, 10, 1
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP = 6, 17, 262


def run(program: bytes, ctx: list[int]) -> int:
    """Execute ``program`` (LDX DW, JEQ32/JNE32 K, MOV32 K, EXIT only) with r1 = ctx."""
    regs = [0] * 11
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps <= len(program) // 8, "a jump went backwards: no loops allowed"
        code, regs_byte, off, imm = struct.unpack_from("=BBhi", program, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        if code == 0x79:
            assert src == 1 and off % 8 == 0 and 0 <= off // 8 < len(ctx)
            regs[dst] = ctx[off // 8] & 0xFFFFFFFFFFFFFFFF
        elif code in (0x16, 0x56):
            assert off >= 0
            equal = (regs[dst] & 0xFFFFFFFF) == (imm & 0xFFFFFFFF)
            if equal == (code == 0x16):
                pc += off
        elif code == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == 0x95:
            return regs[0] & 0xFFFFFFFF
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


def mptcpify(family: int, type_: int, protocol: int) -> int:
    """tools/testing/selftests/bpf/progs/mptcpify.c, without its pid filter."""
    if family in (AF_INET, AF_INET6) and type_ == SOCK_STREAM and protocol in (0, IPPROTO_TCP):
        return IPPROTO_MPTCP
    return protocol


@pytest.mark.parametrize(
    ("family", "type_", "protocol"),
    list(
        itertools.product(
            (AF_INET, AF_INET6, AF_UNIX, 0),
            (SOCK_STREAM, SOCK_DGRAM, 3),
            (0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP, 132),
        )
    ),
)
def test_program_matches_mptcpify_c(family: int, type_: int, protocol: int) -> None:
    assert run(PROGRAM, [family, type_, protocol, 0]) == mptcpify(family, type_, protocol)


def test_program_is_bounded_and_reads_only_the_three_arguments() -> None:
    assert len(PROGRAM) % 8 == 0
    count = len(PROGRAM) // 8
    for pc in range(count):
        code, _regs, off, _imm = struct.unpack_from("=BBhi", PROGRAM, pc * 8)
        if code in (0x16, 0x56):
            assert off >= 0 and pc + 1 + off < count  # forward only, inside the program
        if code == 0x79:
            assert off in (0, 8, 16)
    assert PROGRAM[-8] == 0x95


@pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")
def test_verifier_accepts_the_instructions_as_a_kprobe() -> None:
    fd, log = bpf_mptcpify.load(bpf_mptcpify.BPF_PROG_TYPE_KPROBE)
    os.close(fd)
    assert "processed" in log


def btf_blob(functions: list[str]) -> bytes:
    """A little-endian BTF: an INT, a FUNC_PROTO with one param, then FUNCs with names."""
    strings = b"\0int\0" + b"".join(name.encode() + b"\0" for name in functions)
    types = struct.pack("=III", 1, 1 << 24, 4) + struct.pack("=I", 32)  # INT "int", 32 bits
    types += struct.pack("=III", 0, (13 << 24) | 1, 1) + struct.pack("=II", 0, 1)  # FUNC_PROTO
    offset = 5
    for name in functions:
        types += struct.pack("=III", offset, 12 << 24, 2)  # FUNC → proto id 2
        offset += len(name) + 1
    header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_find_func_counts_ids_across_kinds() -> None:
    blob = btf_blob(["tcp_v4_connect", "update_socket_protocol"])
    assert find_func(blob, "update_socket_protocol") == 4
    assert find_func(blob, "tcp_v4_connect") == 3
    assert find_func(blob, "int") is None  # a name, but not of a FUNC
    assert find_func(blob, "missing") is None


def test_find_func_refuses_what_is_not_btf() -> None:
    with pytest.raises(BtfError, match="magic"):
        find_func(b"\0" * 64, "x")
    with pytest.raises(BtfError, match="short"):
        find_func(b"\x9f\xeb", "x")


def test_no_btf_is_a_reason(tmp_path: Path) -> None:
    result = probe(tmp_path / "vmlinux")
    assert not result.available
    assert str(result) == f"unavailable: the kernel has no BTF ({tmp_path / 'vmlinux'} missing)"


def test_kernel_without_the_function(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(btf_blob(["tcp_v4_connect"]))
    result = str(probe(tmp_path / "vmlinux"))
    assert result.startswith("unavailable: the kernel (")
    assert "has no update_socket_protocol() (Linux 6.6+ with CONFIG_MPTCP)" in result


def test_eperm_names_errno_and_verifier_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinux").write_bytes(btf_blob(["update_socket_protocol"]))
    seen: list[int] = []

    def refuse(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        seen.append(struct.unpack_from("=I", attr, 108)[0])
        error = OSError(errno.EPERM, os.strerror(errno.EPERM))
        raise error

    monkeypatch.setattr(bpf_mptcpify, "_bpf", refuse)
    result = str(probe(tmp_path / "vmlinux"))
    assert seen == [0]  # refused before the BTF walk: tracing programs are refused at all
    assert result.startswith(
        "unavailable: the kernel refused the fmod_ret program for update_socket_protocol: "
        "EPERM (Operation not permitted)"
    )


def test_a_kernel_that_allows_tracing_gets_the_functions_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinux").write_bytes(btf_blob(["tcp_v4_connect", "update_socket_protocol"]))
    seen: list[int] = []

    def verify(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        attach_btf_id = struct.unpack_from("=I", attr, 108)[0]
        seen.append(attach_btf_id)
        if attach_btf_id == 0:  # what a permissive kernel says to a program without a target
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return os.open("/dev/null", os.O_RDONLY)  # a stand-in program fd

    monkeypatch.setattr(bpf_mptcpify, "_bpf", verify)
    assert str(probe(tmp_path / "vmlinux")) == "available"
    assert seen == [0, 4]  # the pre-check, then the FUNC's id from the walk


@pytest.mark.skipif(
    not bpf_mptcpify.VMLINUX_BTF.exists() or os.geteuid() != 0, reason="needs root and BTF"
)
def test_this_kernel() -> None:
    """Here tracing programs are refused: the probe must say so (elsewhere: available)."""
    result = probe()
    if result.available:
        assert str(result) == "available"
    else:
        assert "EPERM" in result.reason or "update_socket_protocol" in result.reason, result


async def test_the_daemons_stepwise_probe_answers_like_the_direct_one() -> None:
    assert str(await probe_in_loop()) == str(probe())
