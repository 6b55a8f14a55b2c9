"""An interpreter of the eBPF subset netpathd's programs use, to test their logic here.

The build machines refuse trampoline programs, so the TCP → MPTCP program cannot run on
them; the kernel's verifier checks it (as a kprobe) and this interpreter runs it over the
cases that matter, with the helpers it calls modelled on their kernel behaviour.  Pointers
are (object, offset) pairs; a kernel struct is a `KernelStruct` of offset → value, so a load
at an offset the test did not lay out fails loudly instead of reading garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from netpathd.kernel import bpf_insn as b


class KernelStruct(dict[int, "int | Pointer"]):
    pass


Memory = bytearray | KernelStruct
Pointer = tuple[Memory, int]
Reg = int | Pointer | None


_SIZES = {b.BPF_W: 4, b.BPF_H: 2, b.BPF_B: 1, b.BPF_DW: 8}


@dataclass
class BpfMap:
    key_size: int
    value_size: int
    entries: dict[bytes, bytearray] = field(default_factory=dict)

    def set(self, key: bytes, value: bytes) -> None:
        assert len(key) == self.key_size and len(value) == self.value_size
        self.entries[key] = bytearray(value)


@dataclass
class Task:
    """The calling task as the helpers see it."""

    cgroup_path_ids: Sequence[int]  # ids from the root (level 0) down to the task's cgroup
    task_struct: KernelStruct


def _u64(value: int) -> int:
    return value & 0xFFFFFFFFFFFFFFFF


def run(program: bytes, ctx: Sequence[int], maps: dict[int, BpfMap], task: Task) -> int:
    regs: list[Reg] = [None] * 11
    regs[1] = (bytearray(struct.pack(f"={len(ctx)}Q", *ctx)), 0)
    regs[10] = (bytearray(512), 512)
    pc = 0
    while True:
        code, regs_byte, off, imm = struct.unpack_from("=BBhi", program, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        klass, op = code & 0x07, code & 0xF0
        pc += 1
        if code == b.BPF_LD | b.BPF_IMM | b.BPF_DW:
            assert src == b.BPF_PSEUDO_MAP_FD
            regs[dst] = imm  # a map fd: only map_lookup_elem takes it
            pc += 1
        elif klass == b.BPF_LDX:
            memory, base = _pointer(regs[src])
            regs[dst] = _load(memory, base + off, _SIZES[code & 0x18])
        elif klass in (b.BPF_STX, b.BPF_ST):
            memory, base = _pointer(regs[dst])
            value = regs[src] if klass == b.BPF_STX else imm
            assert isinstance(memory, bytearray) and isinstance(value, int)
            size = _SIZES[code & 0x18]
            memory[base + off : base + off + size] = (value & ((1 << 8 * size) - 1)).to_bytes(
                size, "little"
            )
        elif klass in (b.BPF_ALU64, b.BPF_ALU):
            regs[dst] = _alu(klass, op, regs[dst], regs[src] if code & b.BPF_X else imm)
        elif code == b.BPF_JMP | b.BPF_EXIT:
            result = regs[0]
            assert isinstance(result, int)
            return result & 0xFFFFFFFF
        elif code == b.BPF_JMP | b.BPF_CALL:
            regs[0] = _call(imm, regs, maps, task)
            regs[1:6] = [None] * 5  # the calling convention clobbers r1-r5
        elif klass in (b.BPF_JMP, b.BPF_JMP32):
            pc += _jump(code, regs[dst], off, imm)
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc - 1}")


def _pointer(value: Reg) -> Pointer:
    assert isinstance(value, tuple), f"dereferencing a non-pointer {value!r}"
    return value


def _load(memory: Memory, at: int, size: int) -> int | Pointer:
    if isinstance(memory, KernelStruct):
        assert at in memory, f"read of kernel struct offset {at} the test did not lay out"
        return memory[at]
    assert at >= 0 and at + size <= len(memory)
    return int.from_bytes(memory[at : at + size], "little")


def _alu(klass: int, op: int, left: Reg, right: Reg) -> Reg:
    if op == b.BPF_MOV:
        return right if klass == b.BPF_ALU64 else _pointer_free(right) & 0xFFFFFFFF
    if op == b.BPF_ADD and isinstance(left, tuple):
        return (left[0], left[1] + _pointer_free(right))
    if op == b.BPF_ADD:
        total = _pointer_free(left) + _pointer_free(right)
        return _u64(total) if klass == b.BPF_ALU64 else total & 0xFFFFFFFF
    if op == b.BPF_AND:
        result = _pointer_free(left) & _pointer_free(right)
        return _u64(result) if klass == b.BPF_ALU64 else result & 0xFFFFFFFF
    raise AssertionError(f"unexpected ALU op {op:#x}")


def _pointer_free(value: Reg) -> int:
    assert isinstance(value, int), f"arithmetic on {value!r}"
    return value


Maps = dict[int, BpfMap]


def _call(helper: int, regs: list[Reg], maps: Maps, task: Task) -> int | Pointer:
    if helper == b.BPF_FUNC_map_lookup_elem:
        bpf_map = maps[_pointer_free(regs[1])]
        memory, at = _pointer(regs[2])
        assert isinstance(memory, bytearray)
        value = bpf_map.entries.get(bytes(memory[at : at + bpf_map.key_size]))
        return 0 if value is None else (value, 0)
    if helper == b.BPF_FUNC_get_current_cgroup_id:
        return task.cgroup_path_ids[-1]
    if helper == b.BPF_FUNC_get_current_ancestor_cgroup_id:
        level = _pointer_free(regs[1])
        return task.cgroup_path_ids[level] if level < len(task.cgroup_path_ids) else 0
    if helper == b.BPF_FUNC_get_current_task_btf:
        return (task.task_struct, 0)
    raise AssertionError(f"unexpected helper {helper}")


def _jump(code: int, left: Reg, off: int, imm: int) -> int:
    """How far a JA, JEQ or JNE with an immediate moves the program counter."""
    klass, op = code & 0x07, code & 0xF0
    if code == b.BPF_JMP | b.BPF_JA:
        return off
    assert op in (b.BPF_JEQ, b.BPF_JNE) and off >= 0 and code & b.BPF_X == 0
    assert left is not None, "comparing an uninitialised register"
    if isinstance(left, tuple):
        assert imm == 0, "a pointer is only compared with NULL"
        equal = False
    else:
        mask = 0xFFFFFFFF if klass == b.BPF_JMP32 else 0xFFFFFFFFFFFFFFFF
        equal = left & mask == imm & mask
    return off if equal == (op == b.BPF_JEQ) else 0
