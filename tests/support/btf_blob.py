"""Little BTF blobs for tests: types are added in id order, the header is computed."""

from __future__ import annotations

import struct

KIND_INT, KIND_PTR, KIND_STRUCT, KIND_FUNC, KIND_FUNC_PROTO = 1, 2, 4, 12, 13


class BtfBuilder:
    def __init__(self) -> None:
        self._strings = bytearray(b"\0")
        self._types = bytearray()
        self._next_id = 1

    def _name(self, name: str) -> int:
        if not name:
            return 0
        offset = len(self._strings)
        self._strings += name.encode() + b"\0"
        return offset

    def add(
        self, kind: int, name: str, vlen: int, size_or_type: int, extra: bytes = b"",
        *, kind_flag: bool = False,
    ) -> int:  # fmt: skip
        info = (kind << 24) | vlen | (int(kind_flag) << 31)
        self._types += struct.pack("=III", self._name(name), info, size_or_type) + extra
        self._next_id += 1
        return self._next_id - 1

    def int_(self, name: str = "int", bits: int = 32) -> int:
        return self.add(KIND_INT, name, 0, bits // 8, struct.pack("=I", bits))

    def ptr(self, to: int) -> int:
        return self.add(KIND_PTR, "", 0, to)

    def struct_(
        self, name: str, size: int, members: list[tuple[str, int, int]], *, kind_flag: bool = False
    ) -> int:
        """members: (name, type id, bit offset)"""
        extra = b"".join(
            struct.pack("=III", self._name(member), type_id, bits)
            for member, type_id, bits in members
        )
        return self.add(KIND_STRUCT, name, len(members), size, extra, kind_flag=kind_flag)

    def func(self, name: str) -> int:
        proto = self.add(KIND_FUNC_PROTO, "", 1, 0, struct.pack("=II", 0, 0))
        return self.add(KIND_FUNC, name, 0, proto)

    def blob(self) -> bytes:
        header = struct.pack(
            "=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self._types), len(self._types),
            len(self._strings),
        )  # fmt: skip
        return header + bytes(self._types) + bytes(self._strings)


def kernel_like(with_function: bool = True) -> bytes:
    """task_struct → nsproxy → net → ns.inum at the offsets of 6.18, and the hook's FUNC."""
    btf = BtfBuilder()
    uint = btf.int_("unsigned int")
    ns_common = btf.struct_("ns_common", 24, [("stashed", uint, 0), ("inum", uint, 128)])
    net = btf.struct_("net", 4096, [("passive", uint, 0), ("ns", ns_common, 152 * 8)])
    nsproxy = btf.struct_("nsproxy", 72, [("count", uint, 0), ("net_ns", btf.ptr(net), 320)])
    btf.struct_("task_struct", 9000, [("nsproxy", btf.ptr(nsproxy), 1840 * 8)])
    btf.func("tcp_v4_connect")
    if with_function:
        btf.func("update_socket_protocol")
    return btf.blob()
