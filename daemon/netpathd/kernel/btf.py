"""A reader of the kernel's BTF (``/sys/kernel/btf/vmlinux``): type ids and member offsets.

Type ids are positional, so the type section is walked kind by kind to its exact end; a kind
this reader does not know is an error, because guessing its size would shift every later id
(include/uapi/linux/btf.h lists the extra bytes after each 12-byte ``struct btf_type``).
Member offsets are what a BPF program needs to read kernel structures whose layout changes
with every build (``task_struct.nsproxy`` is 1840 on one kernel and something else on the
next): libbpf reads them the same way for CO-RE relocations.

The walk yields every `YIELD_EVERY` types so the daemon can run it in steps in its loop.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

_BTF_MAGIC = 0xEB9F
# magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER = struct.Struct("=HBBIIIII")
_TYPE = struct.Struct("=III")  # name_off, info, size/type
_MEMBER = struct.Struct("=III")  # name_off, type, offset

BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION = 1, 2, 3, 4, 5
BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_FUNC = 8, 9, 10, 12
BTF_KIND_TYPE_TAG = 18
_QUALIFIERS = frozenset({BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_TYPE_TAG})
# bytes after struct btf_type, per kind: (fixed, per vlen); kinds 2, 7-12, 16, 18 have none
KIND_EXTRA = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
    8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
    15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12),
}  # fmt: skip

YIELD_EVERY = 4096

T = TypeVar("T")


class BtfError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BtfType:
    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int
    offset: int  # of its struct btf_type in the blob


class Btf:
    """The parsed type section of one BTF blob (built by `parse` or `parse_steps`)."""

    def __init__(self, blob: bytes, offsets: list[int], strings: tuple[int, int]) -> None:
        self._blob = blob
        self._offsets = offsets  # index = type id; id 0 is void
        self._str_start, self._str_end = strings

    def __len__(self) -> int:
        """Number of type ids, void (id 0) included."""
        return len(self._offsets)

    def name(self, name_off: int) -> str:
        start = self._str_start + name_off
        end = self._blob.find(b"\0", start, self._str_end)
        if end < 0:
            raise BtfError(f"name offset {name_off} is outside the string section")
        return self._blob[start:end].decode()

    def type(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self._offsets):
            raise BtfError(f"no type id {type_id}")
        offset = self._offsets[type_id]
        name_off, info, size_or_type = _TYPE.unpack_from(self._blob, offset)
        return BtfType(
            type_id, (info >> 24) & 0x1F, self.name(name_off), info & 0xFFFF,
            bool(info >> 31), size_or_type, offset,
        )  # fmt: skip

    def find(self, name: str, kind: int) -> BtfType:
        """The first type of ``kind`` named ``name``; BtfError when there is none."""
        where = self._blob.find(b"\0" + name.encode() + b"\0", self._str_start, self._str_end)
        if where >= 0:
            wanted = where + 1 - self._str_start
            for type_id in range(1, len(self._offsets)):
                name_off, info, _ = _TYPE.unpack_from(self._blob, self._offsets[type_id])
                if name_off == wanted and (info >> 24) & 0x1F == kind:
                    return self.type(type_id)
        raise BtfError(f"no BTF type {name!r} of kind {kind}")

    def resolve(self, type_id: int) -> BtfType:
        """``type_id`` with typedefs and qualifiers (const, volatile, type tags) stripped."""
        found = self.type(type_id)
        while found.kind in _QUALIFIERS:
            found = self.type(found.size_or_type)
        return found

    def member(self, struct_type: BtfType, name: str) -> tuple[int, BtfType]:
        """(byte offset, resolved type) of member ``name``, looking into anonymous members."""
        if struct_type.kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raise BtfError(f"{struct_type.name or struct_type.id} is not a struct or union")
        base = struct_type.offset + _TYPE.size
        for index in range(struct_type.vlen):
            name_off, type_id, bits = _MEMBER.unpack_from(self._blob, base + index * 12)
            bit_offset = bits & 0xFFFFFF if struct_type.kind_flag else bits
            member_type = self.resolve(type_id)
            member_name = self.name(name_off)
            if member_name == name:
                if bit_offset % 8:
                    raise BtfError(f"{struct_type.name}.{name} is a bitfield")
                return bit_offset // 8, member_type
            if not member_name and member_type.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                try:
                    inner, found = self.member(member_type, name)
                except BtfError:
                    continue
                return bit_offset // 8 + inner, found
        raise BtfError(f"struct {struct_type.name} has no member {name!r}")

    def offset_of(self, struct_name: str, path: str) -> int:
        """Byte offset of ``a.b.c`` (nested, not through pointers) in struct ``struct_name``."""
        current = self.find(struct_name, BTF_KIND_STRUCT)
        total = 0
        for part in path.split("."):
            offset, current = self.member(current, part)
            total += offset
        return total

    def pointee(self, struct_name: str, member: str) -> BtfType:
        """What the pointer member ``struct_name.member`` points to (resolved)."""
        _offset, found = self.member(self.find(struct_name, BTF_KIND_STRUCT), member)
        if found.kind != BTF_KIND_PTR:
            raise BtfError(f"{struct_name}.{member} is not a pointer")
        return self.resolve(found.size_or_type)


def parse_steps(blob: bytes) -> Generator[None, None, Btf]:
    """Walk the type section to its exact end; yields every YIELD_EVERY types."""
    if len(blob) < _HEADER.size:
        raise BtfError("too short for a BTF header")
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(
        blob
    )
    if magic != _BTF_MAGIC:
        raise BtfError(f"bad magic {magic:#x} (big-endian BTF is not read)")
    start, end = hdr_len + type_off, hdr_len + type_off + type_len
    strings = (hdr_len + str_off, hdr_len + str_off + str_len)
    if end > len(blob) or strings[1] > len(blob):
        raise BtfError(f"sections end past the blob ({len(blob)} bytes)")
    offsets, offset = [0], start
    unpack = _TYPE.unpack_from
    while offset < end:
        if offset + _TYPE.size > end:
            raise BtfError(f"a partial type at byte {offset - start} of the type section")
        _name_off, info, _size = unpack(blob, offset)
        kind = (info >> 24) & 0x1F
        extra = KIND_EXTRA.get(kind)
        if extra is None:
            raise BtfError(f"unknown BTF kind {kind} at type id {len(offsets)}")
        offsets.append(offset)
        offset += _TYPE.size + extra[0] + extra[1] * (info & 0xFFFF)
        if len(offsets) % YIELD_EVERY == 0:
            yield
    if offset != end:
        raise BtfError(f"the last type runs {offset - end} bytes past the type section")
    return Btf(blob, offsets, strings)


def run_steps(steps: Generator[None, None, T]) -> T:
    """Drive a stepwise computation to its end without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def parse(blob: bytes) -> Btf:
    return run_steps(parse_steps(blob))
