"""The BTF reader: this kernel's own BTF to its exact end, and the offsets the program reads."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from netpathd.kernel import btf
from netpathd.kernel.bpf_mptcpify import netns_offsets
from tests.support.btf_blob import KIND_STRUCT, BtfBuilder, kernel_like

VMLINUX = Path("/sys/kernel/btf/vmlinux")
needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="this kernel has no BTF")


@needs_vmlinux
def test_this_kernels_btf_parses_to_its_exact_end() -> None:
    blob = VMLINUX.read_bytes()
    parsed = btf.parse(blob)  # raises unless the last type ends exactly at the section's end
    _magic, _v, _f, hdr_len, type_off, type_len, _so, _sl = struct.unpack_from("=HBBIIIII", blob)
    last = parsed.type(len(parsed) - 1)
    fixed, per = btf.KIND_EXTRA[last.kind]
    assert last.offset + 12 + fixed + per * last.vlen == hdr_len + type_off + type_len
    assert len(parsed) > 50_000  # vmlinux has 100,000+ types: a short walk stopped early
    assert parsed.find("update_socket_protocol", btf.BTF_KIND_FUNC).kind == btf.BTF_KIND_FUNC


@needs_vmlinux
def test_netns_member_offsets_from_this_kernels_btf() -> None:
    parsed = btf.parse(VMLINUX.read_bytes())
    offsets = netns_offsets(parsed)
    assert parsed.pointee("task_struct", "nsproxy").name == "nsproxy"
    assert parsed.pointee("nsproxy", "net_ns").name == "net"
    # ns.inum is found through the nested struct ns_common, and it is an unsigned int
    inner = parsed.offset_of("ns_common", "inum")
    assert offsets.net_ns_inum == parsed.offset_of("net", "ns") + inner
    ns_type = parsed.member(parsed.find("net", btf.BTF_KIND_STRUCT), "ns")[1]
    inum_type = parsed.member(ns_type, "inum")[1]
    assert (inum_type.kind, inum_type.size_or_type) == (btf.BTF_KIND_INT, 4)
    for offset in (offsets.task_nsproxy, offsets.nsproxy_net_ns):
        assert offset % 8 == 0 and offset > 0  # pointers, after other members


def test_offsets_from_a_small_blob_nested_and_in_bytes() -> None:
    offsets = netns_offsets(btf.parse(kernel_like()))
    assert (offsets.task_nsproxy, offsets.nsproxy_net_ns, offsets.net_ns_inum) == (1840, 40, 168)


def test_anonymous_members_and_bitfield_encoded_offsets() -> None:
    builder = BtfBuilder()
    uint = builder.int_("unsigned int")
    inner = builder.struct_("", 8, [("a", uint, 0), ("b", uint, 32)])
    # kind_flag: offset in the low 24 bits, bitfield size in the high 8
    builder.struct_("outer", 24, [("x", uint, (32 << 24) | 0), ("", inner, 64)], kind_flag=True)
    parsed = btf.parse(builder.blob())
    assert parsed.offset_of("outer", "x") == 0
    assert parsed.offset_of("outer", "b") == 12
    with pytest.raises(btf.BtfError, match="no member 'c'"):
        parsed.offset_of("outer", "c")
    with pytest.raises(btf.BtfError, match="no BTF type 'missing'"):
        parsed.find("missing", KIND_STRUCT)


def test_an_unknown_kind_is_an_error_not_a_guess() -> None:
    blob = bytearray(kernel_like())
    struct.pack_into("=I", blob, 24 + 4, 31 << 24)  # the first type's info: kind 31
    with pytest.raises(btf.BtfError, match="unknown BTF kind 31 at type id 1"):
        btf.parse(bytes(blob))


def test_a_type_section_that_does_not_end_on_a_type_is_an_error() -> None:
    blob = bytearray(kernel_like())
    type_len = struct.unpack_from("=I", blob, 12)[0]
    struct.pack_into("=I", blob, 12, type_len - 4)  # cuts into the last 12-byte FUNC
    with pytest.raises(btf.BtfError, match="a partial type at byte"):
        btf.parse(bytes(blob))
    builder = BtfBuilder()
    builder.int_()
    blob = bytearray(builder.blob())
    struct.pack_into("=I", blob, 12, 14)  # the INT's 4 extra bytes now overrun the section
    with pytest.raises(btf.BtfError, match="runs 2 bytes past the type section"):
        btf.parse(bytes(blob))


def test_what_is_not_btf() -> None:
    with pytest.raises(btf.BtfError, match="magic"):
        btf.parse(b"\0" * 64)
    with pytest.raises(btf.BtfError, match="short"):
        btf.parse(b"\x9f\xeb")
