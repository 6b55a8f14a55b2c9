"""The TCP → MPTCP program: golden bytes, its logic run by an interpreter, and the verifier.

The program cannot run on these machines (trampolines are refused), so its logic is run by
tests/support/bpf_interpreter.py over the measured rules (type flags, family, protocol,
netns, scope by cgroup with ancestors), and as root the kernel's verifier checks the very
same instructions, maps included, loaded as a kprobe program, which this machine allows.
"""

from __future__ import annotations

import itertools
import os
import struct
from pathlib import Path

import pytest

from netpathd.kernel import bpf_syscall
from netpathd.kernel.bpf_insn import BPF_ADD, BPF_DW, R0, R1, R2, R10, Assembler, insn
from netpathd.kernel.bpf_mptcpify import (
    CONVERT,
    COUNTER_CONVERTED,
    COUNTER_SEEN,
    LEAVE,
    MAPS,
    NOTHING_IN_SCOPE,
    NetnsOffsets,
    mptcpify_program,
    no_opinion_program,
)
from tests.support.bpf_interpreter import BpfMap, KernelStruct, Task, run

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_MPTCP = 6, 17, 132, 262
OFFSETS = NetnsOffsets(task_nsproxy=1840, nsproxy_net_ns=40, net_ns_inum=176)
FDS = {"policy": 3, "netns": 4, "cgroups": 5, "counters": 6}
GOLDEN = Path(__file__).parent / "data" / "mptcpify_program.hex"
NETNS = 4026531840


def golden_lines(program: bytes) -> list[str]:
    return [program[at : at + 8].hex() for at in range(0, len(program), 8)]


def test_program_bytes_are_the_golden_ones() -> None:
    """tests/unit/data/mptcpify_program.hex: one instruction per line, offsets of 6.18."""
    program = mptcpify_program(OFFSETS).assemble(FDS)
    expected = [line.split("#")[0].strip() for line in GOLDEN.read_text().splitlines()]
    assert golden_lines(program) == [line for line in expected if line]


def test_instructions_are_the_kernel_macros() -> None:
    """Hand-encoded from include/linux/filter.h, one per instruction form the builder emits."""
    asm = Assembler()
    asm.mov64_reg(R2, R10)  # BPF_MOV64_REG(BPF_REG_2, BPF_REG_10)
    asm.alu64_imm(BPF_ADD, R2, -4)  # BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -4)
    asm.ld_map_fd(R1, "m")  # BPF_LD_MAP_FD(BPF_REG_1, 7)
    asm.call(1)  # BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem)
    asm.jmp_imm(0x10, R0, 0, "out")  # BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 1)
    asm.ldx(BPF_DW, R1, R0, 8)  # BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_0, 8)
    asm.label("out")
    asm.exit()
    assert asm.assemble({"m": 7}).hex() == (
        "bfa2000000000000"
        "07020000fcffffff"
        "1811000007000000" "0000000000000000"
        "8500000001000000"
        "1500010000000000"
        "7901080000000000"
        "9500000000000000"
    )  # fmt: skip
    assert no_opinion_program() == insn(0xB7) + insn(0x95)  # r0 = 0; exit


def test_jumps_only_forward_to_known_labels() -> None:
    asm = Assembler()
    asm.label("top")
    asm.ja("top")
    with pytest.raises(ValueError, match="no loops"):
        asm.assemble()
    asm = Assembler()
    asm.ja("nowhere")
    with pytest.raises(ValueError, match="no label 'nowhere'"):
        asm.assemble()


class World:
    """Maps and a calling task for the interpreter, built the way the daemon fills them."""

    def __init__(self, default: int = CONVERT) -> None:
        self.maps = {FDS[spec.name]: BpfMap(spec.key_size, spec.value_size) for spec in MAPS}
        self.policy.set(struct.pack("=I", 0), struct.pack("=I", default))
        self.counters.set(struct.pack("=I", COUNTER_SEEN), bytes(8))
        self.counters.set(struct.pack("=I", COUNTER_CONVERTED), bytes(8))
        self.enable_netns(NETNS)

    def _map(self, name: str) -> BpfMap:
        return self.maps[FDS[name]]

    policy = property(lambda self: self._map("policy"))
    counters = property(lambda self: self._map("counters"))

    def enable_netns(self, inum: int) -> None:
        self._map("netns").set(struct.pack("=I", inum), struct.pack("=I", 1))

    def cgroup(self, cgroup_id: int, verdict: int) -> None:
        self._map("cgroups").set(struct.pack("=Q", cgroup_id), struct.pack("=I", verdict))

    def count(self, counter: int) -> int:
        value: int = struct.unpack("=Q", self.counters.entries[struct.pack("=I", counter)])[0]
        return value

    def socket(
        self, family: int = AF_INET, type_: int = SOCK_STREAM, protocol: int = 0, *,
        cgroups: tuple[int, ...] = (1, 20, 300), netns: int = NETNS, nsproxy: bool = True,
    ) -> int:  # fmt: skip
        net = KernelStruct({OFFSETS.net_ns_inum: netns})
        proxy = KernelStruct({OFFSETS.nsproxy_net_ns: (net, 0)})
        task = KernelStruct({OFFSETS.task_nsproxy: (proxy, 0) if nsproxy else 0})
        program = mptcpify_program(OFFSETS).assemble(FDS)
        return run(program, [family, type_, protocol], self.maps, Task(cgroups, task))


def expected(family: int, type_: int, protocol: int) -> int:
    """What the measured rules want: convert TCP streams whatever the flags, else no opinion."""
    stream = type_ & 0xF == SOCK_STREAM
    if family in (AF_INET, AF_INET6) and stream and protocol in (0, IPPROTO_TCP):
        return IPPROTO_MPTCP
    return 0


@pytest.mark.parametrize(
    ("family", "type_", "protocol"),
    list(
        itertools.product(
            (AF_INET, AF_INET6, AF_UNIX, 0),
            (
                SOCK_STREAM, SOCK_STREAM | SOCK_CLOEXEC,
                SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, SOCK_DGRAM, SOCK_RAW,
                SOCK_DGRAM | SOCK_CLOEXEC,
            ),
            (0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP, IPPROTO_SCTP),
        )
    ),
)  # fmt: skip
def test_system_wide_converts_tcp_streams_only(family: int, type_: int, protocol: int) -> None:
    assert World().socket(family, type_, protocol) == expected(family, type_, protocol)


def test_counters_count_tcp_calls_and_conversions() -> None:
    world = World()
    world.socket()
    world.socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC)
    world.socket(AF_INET, SOCK_DGRAM)  # not TCP: not seen
    world.socket(netns=1)  # seen, not converted
    assert (world.count(COUNTER_SEEN), world.count(COUNTER_CONVERTED)) == (3, 2)


def test_nothing_in_scope_and_namespaces_without_mptcp_get_no_opinion() -> None:
    assert World(NOTHING_IN_SCOPE).socket() == 0
    assert World().socket(netns=NETNS + 1) == 0  # net.mptcp.enabled=0 there: 262 would fail
    assert World().socket(nsproxy=False) == 0


def test_system_wide_opt_out_covers_a_cgroup_and_its_children() -> None:
    world = World(CONVERT)
    world.cgroup(20, LEAVE)
    assert world.socket(cgroups=(1, 20)) == 0
    assert world.socket(cgroups=(1, 20, 300, 4000)) == 0
    assert world.socket(cgroups=(1, 21, 300)) == IPPROTO_MPTCP


def test_selected_cgroups_with_their_children_and_deepest_entry_wins() -> None:
    world = World(LEAVE)
    world.cgroup(20, CONVERT)
    assert world.socket(cgroups=(1, 20)) == IPPROTO_MPTCP
    assert world.socket(cgroups=(1, 20, 300, 4000, 5, 6, 7, 8, 9, 10, 11)) == IPPROTO_MPTCP
    assert world.socket(cgroups=(1, 21, 300)) == 0  # a sibling
    assert world.socket(cgroups=(1,)) == 0  # the root
    world.cgroup(300, LEAVE)
    assert world.socket(cgroups=(1, 20, 300, 4000)) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")
def test_verifier_accepts_the_program_with_its_maps_as_a_kprobe() -> None:
    fds = {spec.name: bpf_syscall.map_create(spec) for spec in MAPS}
    try:
        program = mptcpify_program(OFFSETS).assemble(fds)
        fd, log = bpf_syscall.prog_load(program, bpf_syscall.BPF_PROG_TYPE_KPROBE, name="t")
        os.close(fd)
    finally:
        for map_fd in fds.values():
            os.close(map_fd)
    assert "processed" in log
