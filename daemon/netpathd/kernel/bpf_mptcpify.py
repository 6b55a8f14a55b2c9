"""Can this kernel turn every TCP socket into MPTCP with BPF?  A probe that says why not.

Linux 6.6 added ``update_socket_protocol(family, type, protocol)`` (net/socket.c, called by
``__sys_socket_create()`` after ``type &= SOCK_TYPE_MASK``) as an fmod_ret attach point
registered by net/mptcp/bpf.c; the kernel's selftest
tools/testing/selftests/bpf/progs/mptcpify.c returns IPPROTO_MPTCP from it.  That is the
system-wide replacement for the guide's SystemTap script.  Whether it can work here depends
on three things, checked in this order and reported with the first that fails:

1. BTF at all (``/sys/kernel/btf/vmlinux``, CONFIG_DEBUG_INFO_BTF): tracing programs attach
   by BTF id.
2. A FUNC named ``update_socket_protocol`` in that BTF (Linux 6.6+, CONFIG_MPTCP).
3. The kernel accepting a BPF_PROG_TYPE_TRACING / BPF_MODIFY_RETURN program for it.  EPERM
   here means lockdown, a BPF LSM, a container/seccomp policy, or missing CAP_BPF.

The probe loads the program and closes it at once; it never attaches (attaching would
convert sockets of every process).  Only the standard library: a small BTF walk with
``struct`` and bpf(2) through ctypes, so no libbpf/bcc dependency.

The program (`PROGRAM`) is hand-assembled; its correctness was checked two ways
(tests/unit/test_bpf_mptcpify.py): the same instructions are loaded as a kprobe program, which
this kernel allows, so the verifier checks registers, jumps and the 8-byte context loads
(a kprobe's ``struct pt_regs`` is read like the tracing ``u64 ctx[]``), and a small
interpreter in the test runs it over the whole truth table of mptcpify.c.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import platform
import struct
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
LOCKDOWN = Path("/sys/kernel/security/lockdown")
ATTACH_FUNCTION = "update_socket_protocol"

BPF_PROG_LOAD = 5
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACING = 26
BPF_MODIFY_RETURN = 26
_SYSCALL_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_LOG_SIZE = 1 << 16

_AF_INET, _AF_INET6, _SOCK_STREAM, _IPPROTO_TCP, _IPPROTO_MPTCP = 2, 10, 1, 6, 262

_BTF_MAGIC = 0xEB9F
_BTF_HEADER = struct.Struct("=HBBIIIII")  # magic version flags hdr_len type/str off+len
_BTF_TYPE = struct.Struct("=III")  # name_off, info, size/type
_BTF_KIND_FUNC = 12
# bytes following struct btf_type, per kind (include/uapi/linux/btf.h): (fixed, per vlen)
_BTF_EXTRA = {
    1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
    14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12),
}  # fmt: skip


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("=BBhi", code, dst | (src << 4), off, imm)


_LDX_DW, _JEQ32_K, _JNE32_K, _MOV32_K, _EXIT = 0x79, 0x16, 0x56, 0xB4, 0x95
# int BPF_PROG(mptcpify, int family, int type, int protocol): ctx is u64[] of the arguments
PROGRAM = b"".join(
    (
        _insn(_LDX_DW, dst=2, src=1, off=0),  # 0: r2 = family
        _insn(_LDX_DW, dst=3, src=1, off=8),  # 1: r3 = type
        _insn(_LDX_DW, dst=0, src=1, off=16),  # 2: r0 = protocol (the default answer)
        _insn(_JNE32_K, dst=3, off=5, imm=_SOCK_STREAM),  # 3: not a stream → 9
        _insn(_JEQ32_K, dst=2, off=1, imm=_AF_INET),  # 4: AF_INET → 6
        _insn(_JNE32_K, dst=2, off=3, imm=_AF_INET6),  # 5: nor AF_INET6 → 9
        _insn(_JEQ32_K, dst=0, off=1, imm=0),  # 6: protocol 0 → 8
        _insn(_JNE32_K, dst=0, off=1, imm=_IPPROTO_TCP),  # 7: not TCP → 9
        _insn(_MOV32_K, dst=0, imm=_IPPROTO_MPTCP),  # 8: w0 = IPPROTO_MPTCP
        _insn(_EXIT),  # 9: return r0
    )
)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    available: bool
    reason: str  # "" when available

    def __str__(self) -> str:
        return "available" if self.available else f"unavailable: {self.reason}"


class BtfError(Exception):
    pass


T = TypeVar("T")
YIELD_EVERY = 4096  # BTF types walked between two returns to the event loop
Steps = Generator[None, None, "ProbeResult"]


def _name_offset(btf: bytes, name: str) -> tuple[int, int] | None:
    """(header length, string offset of ``name``), None when no type can carry the name."""
    if len(btf) < _BTF_HEADER.size:
        raise BtfError("too short for a BTF header")
    magic, _version, _flags, hdr_len, _type_off, _type_len, str_off, str_len = (
        _BTF_HEADER.unpack_from(btf)
    )
    if magic != _BTF_MAGIC:
        raise BtfError(f"bad magic {magic:#x} (big-endian BTF is not read)")
    strings = btf[hdr_len + str_off : hdr_len + str_off + str_len]
    where = strings.find(b"\0" + name.encode() + b"\0")
    return None if where < 0 else (hdr_len, where + 1)


def _find_func_steps(btf: bytes, name: str) -> Generator[None, None, int | None]:
    """Walk the type section; yields now and then so the daemon's loop is never held.

    vmlinux has about 120,000 types and ids are positional, so the walk cannot be
    skipped (libbpf's btf__find_by_name_kind() walks them too).
    """
    found = _name_offset(btf, name)
    if found is None:
        return None
    hdr_len, wanted = found
    _magic, _version, _flags, _hdr, type_off, type_len, _str_off, _str_len = (
        _BTF_HEADER.unpack_from(btf)
    )
    offset, end, type_id = hdr_len + type_off, hdr_len + type_off + type_len, 1
    unpack = _BTF_TYPE.unpack_from
    while offset + _BTF_TYPE.size <= end:
        name_off, info, _size = unpack(btf, offset)
        kind = (info >> 24) & 0x1F
        if kind == _BTF_KIND_FUNC and name_off == wanted:
            return type_id
        fixed, per = _BTF_EXTRA.get(kind, (0, 0))
        offset += _BTF_TYPE.size + fixed + per * (info & 0xFFFF)
        type_id += 1
        if type_id % YIELD_EVERY == 0:
            yield
    return None


def _run(steps: Generator[None, None, T]) -> T:
    """Drive a stepwise computation to its end without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def find_func(btf: bytes, name: str) -> int | None:
    """The BTF type id of FUNC ``name`` in a raw BTF blob, None when absent."""
    return _run(_find_func_steps(btf, name))


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    number = _SYSCALL_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2) number unknown for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.syscall(number, cmd, attr, len(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def load(prog_type: int, expected_attach_type: int = 0, attach_btf_id: int = 0) -> tuple[int, str]:
    """BPF_PROG_LOAD of `PROGRAM`: (fd, verifier log); OSError carries errno and the log."""
    insns = ctypes.create_string_buffer(PROGRAM, len(PROGRAM))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, zero beyond what we set
    struct.pack_into(
        "=IIQQIIQ", attr, 0, prog_type, len(PROGRAM) // 8, ctypes.addressof(insns),
        ctypes.addressof(license_), 1, _LOG_SIZE, ctypes.addressof(log),
    )  # fmt: skip
    struct.pack_into("=16s", attr, 48, b"mptcpify")  # prog_name
    struct.pack_into("=I", attr, 68, expected_attach_type)
    struct.pack_into("=I", attr, 108, attach_btf_id)
    try:
        fd = _bpf(BPF_PROG_LOAD, attr)
    except OSError as error:
        error.filename = log.value.decode(errors="replace").strip()
        raise
    return fd, log.value.decode(errors="replace").strip()


def _lockdown() -> str:
    try:
        text = LOCKDOWN.read_text()
    except OSError:
        return ""
    mode = text[text.find("[") + 1 : text.find("]")] if "[" in text else ""
    return f"; kernel lockdown is {mode}" if mode and mode != "none" else ""


def _refused(error: OSError) -> ProbeResult:
    name = errno.errorcode.get(error.errno or 0, str(error.errno))
    reason = f"the kernel refused the fmod_ret program for {ATTACH_FUNCTION}: {name} "
    reason += f"({error.strerror})"
    if error.errno == errno.EPERM:
        reason += " - lockdown, a BPF LSM or policy, or no CAP_BPF" + _lockdown()
    if error.filename:
        reason += f"; verifier: {' '.join(str(error.filename).split())}"
    return ProbeResult(False, reason)


def _no_function() -> ProbeResult:
    return ProbeResult(
        False,
        f"the kernel ({platform.release()}) has no {ATTACH_FUNCTION}() "
        "(Linux 6.6+ with CONFIG_MPTCP)",
    )


def _probe_steps(btf_path: Path) -> Steps:  # noqa: PLR0911 - one return per reason
    try:
        btf = btf_path.read_bytes()
    except FileNotFoundError:
        return ProbeResult(False, f"the kernel has no BTF ({btf_path} missing)")
    except OSError as error:
        return ProbeResult(False, f"cannot read {btf_path}: {error.strerror}")
    try:
        if _name_offset(btf, ATTACH_FUNCTION) is None:
            return _no_function()
        # A kernel that refuses tracing programs refuses them whatever they attach to
        # (measured: EPERM for id 0 as for the real id), so ask that first and spare the
        # walk of the whole type section when the answer is no anyway.
        try:
            fd, _log = load(BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, 0)
            os.close(fd)  # id 0 cannot attach; should a kernel accept it, ignore it
        except OSError as error:
            if error.errno == errno.EPERM:
                return _refused(error)
        func_id = yield from _find_func_steps(btf, ATTACH_FUNCTION)
    except BtfError as error:
        return ProbeResult(False, f"cannot parse {btf_path}: {error}")
    if func_id is None:
        return _no_function()
    try:
        fd, _log = load(BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, func_id)
    except OSError as error:
        return _refused(error)
    os.close(fd)
    return ProbeResult(True, "")


def probe(btf_path: Path = VMLINUX_BTF) -> ProbeResult:
    """Whether system-wide BPF mode could run here, and if not, the first reason why."""
    return _run(_probe_steps(btf_path))


async def probe_in_loop(btf_path: Path = VMLINUX_BTF) -> ProbeResult:
    """`probe()` for the daemon: the BTF walk (about 0.1 s of CPU) returns to the event loop
    every YIELD_EVERY types, so no D-Bus call or netlink event waits behind it."""
    steps = _probe_steps(btf_path)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: ProbeResult = done.value
            return result
        await asyncio.sleep(0)
