"""A small eBPF assembler with the kernel's names (include/uapi/linux/bpf.h, bpf_common.h).

Opcodes are built as the kernel's own macros build them (``BPF_LDX | BPF_MEM | BPF_DW``),
jumps go to named labels, and `Assembler.assemble()` resolves them, so a program reads like the
kernel's ``BPF_*`` instruction macros (include/linux/filter.h) rather than as numbers.  Only
forward jumps are accepted: the programs here have no loops.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# instruction classes
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = range(8)
# sizes and modes
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
BPF_IMM, BPF_MEM = 0x00, 0x60
# ALU operations and operand source
BPF_ADD, BPF_AND, BPF_MOV = 0x00, 0x50, 0xB0
BPF_K, BPF_X = 0x00, 0x08
# jump operations
BPF_JA, BPF_JEQ, BPF_JNE, BPF_CALL, BPF_EXIT = 0x00, 0x10, 0x50, 0x80, 0x90
BPF_PSEUDO_MAP_FD = 1

# registers
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# helpers (enum bpf_func_id)
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_get_current_cgroup_id = 80
BPF_FUNC_get_current_ancestor_cgroup_id = 123
BPF_FUNC_get_current_task_btf = 158

_INSN = struct.Struct("=BBhi")


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: code, dst_reg:4 | src_reg:4, s16 off, s32 imm."""
    return _INSN.pack(code, dst | (src << 4), off, imm)


@dataclass(frozen=True, slots=True)
class _Jump:
    code: int
    dst: int
    src: int
    imm: int
    label: str


@dataclass(frozen=True, slots=True)
class _MapLoad:
    dst: int
    map_name: str


class Assembler:
    """Collects instructions and labels; `assemble()` gives the bytes for given map fds."""

    def __init__(self) -> None:
        self._items: list[bytes | _Jump | _MapLoad] = []
        self._labels: dict[str, int] = {}
        self._slots = 0

    def _add(self, item: bytes | _Jump | _MapLoad, slots: int = 1) -> None:
        self._items.append(item)
        self._slots += slots

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = self._slots

    def ldx(self, size: int, dst: int, src: int, off: int) -> None:
        """dst = *(size *)(src + off)"""
        self._add(insn(BPF_LDX | BPF_MEM | size, dst, src, off))

    def stx(self, size: int, dst: int, src: int, off: int) -> None:
        """*(size *)(dst + off) = src"""
        self._add(insn(BPF_STX | BPF_MEM | size, dst, src, off))

    def st(self, size: int, dst: int, off: int, imm: int) -> None:
        """*(size *)(dst + off) = imm"""
        self._add(insn(BPF_ST | BPF_MEM | size, dst, 0, off, imm))

    def alu64_imm(self, op: int, dst: int, imm: int) -> None:
        self._add(insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm))

    def alu64_reg(self, op: int, dst: int, src: int) -> None:
        self._add(insn(BPF_ALU64 | op | BPF_X, dst, src))

    def alu32_imm(self, op: int, dst: int, imm: int) -> None:
        self._add(insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm))

    def mov64_reg(self, dst: int, src: int) -> None:
        self.alu64_reg(BPF_MOV, dst, src)

    def mov64_imm(self, dst: int, imm: int) -> None:
        self.alu64_imm(BPF_MOV, dst, imm)

    def ld_map_fd(self, dst: int, map_name: str) -> None:
        """BPF_LD_MAP_FD: a 16-byte ld_imm64 whose fd the verifier turns into the map."""
        self._add(_MapLoad(dst, map_name), slots=2)

    def jmp32_imm(self, op: int, dst: int, imm: int, label: str) -> None:
        self._add(_Jump(BPF_JMP32 | op | BPF_K, dst, 0, imm, label))

    def jmp_imm(self, op: int, dst: int, imm: int, label: str) -> None:
        self._add(_Jump(BPF_JMP | op | BPF_K, dst, 0, imm, label))

    def ja(self, label: str) -> None:
        self._add(_Jump(BPF_JMP | BPF_JA, 0, 0, 0, label))

    def call(self, helper: int) -> None:
        self._add(insn(BPF_JMP | BPF_CALL, imm=helper))

    def exit(self) -> None:
        self._add(insn(BPF_JMP | BPF_EXIT))

    def assemble(self, map_fds: dict[str, int] | None = None) -> bytes:
        """The program with the given map fds (0 for every map when none are given)."""
        fds = map_fds or {}
        out: list[bytes] = []
        slot = 0
        for item in self._items:
            if isinstance(item, bytes):
                out.append(item)
                slot += 1
            elif isinstance(item, _MapLoad):
                fd = fds.get(item.map_name, 0) if map_fds is None else fds[item.map_name]
                out.append(insn(BPF_LD | BPF_IMM | BPF_DW, item.dst, BPF_PSEUDO_MAP_FD, 0, fd))
                out.append(insn(0))
                slot += 2
            else:
                target = self._labels.get(item.label)
                if target is None:
                    raise ValueError(f"no label {item.label!r}")
                off = target - slot - 1
                if off < 0:
                    raise ValueError(f"jump back to {item.label!r}: programs here have no loops")
                out.append(insn(item.code, item.dst, item.src, off, item.imm))
                slot += 1
        return b"".join(out)
