"""TCP → MPTCP in the kernel: the BPF program for ``update_socket_protocol`` and its probe.

Linux 6.6 added ``update_socket_protocol(family, type, protocol)`` (net/socket.c), called by
``__sys_socket()`` **before** ``type`` is masked, as an fmod_ret attach point registered by
net/mptcp/bpf.c.  What was measured on Debian's 6.12 kernel (../shared/bpf-mptcpify.md) shapes
the program, and is why it differs from the kernel selftest progs/mptcpify.c:

- ``type`` still carries SOCK_NONBLOCK|SOCK_CLOEXEC (Python and Go set them), so the test is
  ``(type & SOCK_TYPE_MASK) == SOCK_STREAM``, not ``type == SOCK_STREAM``;
- a non-zero return replaces the result and skips every later fmod_ret program, so anything
  but a conversion returns 0 ("no opinion": the kernel keeps ``protocol``);
- in a network namespace with ``net.mptcp.enabled=0`` a forced 262 makes ``socket()`` fail
  (ENOPROTOOPT), so only namespaces listed in the ``netns`` map (kept in step with the
  sysctl by the daemon) are converted: ``current->nsproxy->net_ns->ns.inum``, offsets read
  from BTF at load time.

The policy lives in maps, so a scope change never reloads the program:
``policy[0]`` is the default verdict (0: nothing in scope, return at once; `CONVERT`;
`LEAVE`), and ``cgroups`` maps a cgroup id to a verdict that overrides it.  The caller's cgroup
and then its ancestors, deepest first (``bpf_get_current_ancestor_cgroup_id(8..1)``), are
looked up; the first hit decides, so a unit's sub-cgroups (Delegate=, user units) follow it.
System-wide is default `CONVERT` with `LEAVE` entries for opt-outs; selected cgroups is default
`LEAVE` with `CONVERT` entries.  A per-CPU ``counters`` array counts TCP ``socket()`` calls
seen (`COUNTER_SEEN`) and converted (`COUNTER_CONVERTED`).
"""

from __future__ import annotations

from dataclasses import dataclass

from netpathd.kernel.bpf_insn import (
    BPF_ADD,
    BPF_AND,
    BPF_DW,
    BPF_JEQ,
    BPF_JNE,
    BPF_W,
    R0,
    R1,
    R2,
    R6,
    R7,
    R10,
    Assembler,
    BPF_FUNC_get_current_ancestor_cgroup_id,
    BPF_FUNC_get_current_cgroup_id,
    BPF_FUNC_get_current_task_btf,
    BPF_FUNC_map_lookup_elem,
)
from netpathd.kernel.bpf_syscall import (
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    MapSpec,
)
from netpathd.kernel.btf import Btf

ATTACH_FUNCTION = "update_socket_protocol"
AF_INET, AF_INET6, SOCK_STREAM, SOCK_TYPE_MASK = 2, 10, 1, 0xF
IPPROTO_TCP, IPPROTO_MPTCP = 6, 262

NOTHING_IN_SCOPE, CONVERT, LEAVE = 0, 1, 2
COUNTER_SEEN, COUNTER_CONVERTED = 0, 1
ANCESTOR_LEVELS = 8  # cgroup levels below the root walked; deeper cgroups match by ancestor

MAPS = (
    MapSpec("policy", BPF_MAP_TYPE_ARRAY, 4, 4, 1),
    MapSpec("netns", BPF_MAP_TYPE_HASH, 4, 4, 4096),
    MapSpec("cgroups", BPF_MAP_TYPE_HASH, 8, 4, 4096),
    MapSpec("counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2),
)

# stack slots below the frame pointer r10
_KEY32, _NETNS_KEY, _CGROUP_KEY = -4, -8, -16


@dataclass(frozen=True, slots=True)
class NetnsOffsets:
    """Where ``current->nsproxy->net_ns->ns.inum`` is on the running kernel."""

    task_nsproxy: int
    nsproxy_net_ns: int
    net_ns_inum: int


def netns_offsets(btf: Btf) -> NetnsOffsets:
    """Read from BTF, so the program follows the kernel's layout (BtfError when absent)."""
    return NetnsOffsets(
        btf.offset_of("task_struct", "nsproxy"),
        btf.offset_of("nsproxy", "net_ns"),
        btf.offset_of("net", "ns.inum"),
    )


def _lookup(asm: Assembler, map_name: str, key_slot: int) -> None:
    """r0 = bpf_map_lookup_elem(&map, r10 + key_slot)"""
    asm.mov64_reg(R2, R10)
    asm.alu64_imm(BPF_ADD, R2, key_slot)
    asm.ld_map_fd(R1, map_name)
    asm.call(BPF_FUNC_map_lookup_elem)


def _count(asm: Assembler, counter: int) -> None:
    """counters[counter] += 1 on this CPU (a per-CPU slot needs no atomic add)."""
    done = f"counted_{counter}"
    asm.st(BPF_W, R10, _KEY32, counter)
    _lookup(asm, "counters", _KEY32)
    asm.jmp_imm(BPF_JEQ, R0, 0, done)
    asm.ldx(BPF_DW, R1, R0, 0)
    asm.alu64_imm(BPF_ADD, R1, 1)
    asm.stx(BPF_DW, R0, R1, 0)
    asm.label(done)


def _cgroup_verdict(asm: Assembler) -> None:
    """r7 = cgroups[id] for the caller's cgroup or its deepest listed ancestor, if any."""
    asm.call(BPF_FUNC_get_current_cgroup_id)
    asm.stx(BPF_DW, R10, R0, _CGROUP_KEY)
    _lookup(asm, "cgroups", _CGROUP_KEY)
    asm.jmp_imm(BPF_JNE, R0, 0, "cgroup_listed")
    for level in range(ANCESTOR_LEVELS, 0, -1):
        asm.mov64_imm(R1, level)
        asm.call(BPF_FUNC_get_current_ancestor_cgroup_id)
        asm.jmp_imm(BPF_JEQ, R0, 0, f"not_level_{level}")  # the caller is not that deep
        asm.stx(BPF_DW, R10, R0, _CGROUP_KEY)
        _lookup(asm, "cgroups", _CGROUP_KEY)
        asm.jmp_imm(BPF_JNE, R0, 0, "cgroup_listed")
        asm.label(f"not_level_{level}")
    asm.ja("decide")
    asm.label("cgroup_listed")
    asm.ldx(BPF_W, R7, R0, 0)


def mptcpify_program(offsets: NetnsOffsets) -> Assembler:
    """int BPF_PROG(mptcpify, int family, int type, int protocol): ctx is u64[] of those."""
    asm = Assembler()
    asm.mov64_reg(R6, R1)
    asm.ldx(BPF_DW, R2, R6, 0)  # family
    asm.jmp32_imm(BPF_JEQ, R2, AF_INET, "inet")
    asm.jmp32_imm(BPF_JNE, R2, AF_INET6, "no_opinion")
    asm.label("inet")
    asm.ldx(BPF_DW, R2, R6, 8)  # type, SOCK_NONBLOCK|SOCK_CLOEXEC not yet masked
    asm.alu32_imm(BPF_AND, R2, SOCK_TYPE_MASK)
    asm.jmp32_imm(BPF_JNE, R2, SOCK_STREAM, "no_opinion")
    asm.ldx(BPF_DW, R2, R6, 16)  # protocol
    asm.jmp32_imm(BPF_JEQ, R2, 0, "tcp")
    asm.jmp32_imm(BPF_JNE, R2, IPPROTO_TCP, "no_opinion")
    asm.label("tcp")
    _count(asm, COUNTER_SEEN)

    asm.st(BPF_W, R10, _KEY32, 0)
    _lookup(asm, "policy", _KEY32)
    asm.jmp_imm(BPF_JEQ, R0, 0, "no_opinion")
    asm.ldx(BPF_W, R7, R0, 0)  # the default verdict
    asm.jmp32_imm(BPF_JEQ, R7, NOTHING_IN_SCOPE, "no_opinion")

    asm.call(BPF_FUNC_get_current_task_btf)
    asm.ldx(BPF_DW, R1, R0, offsets.task_nsproxy)
    asm.jmp_imm(BPF_JEQ, R1, 0, "no_opinion")  # an exiting task has no nsproxy
    asm.ldx(BPF_DW, R1, R1, offsets.nsproxy_net_ns)
    asm.jmp_imm(BPF_JEQ, R1, 0, "no_opinion")
    asm.ldx(BPF_W, R1, R1, offsets.net_ns_inum)
    asm.stx(BPF_W, R10, R1, _NETNS_KEY)
    _lookup(asm, "netns", _NETNS_KEY)
    asm.jmp_imm(BPF_JEQ, R0, 0, "no_opinion")  # MPTCP disabled there: 262 would fail

    _cgroup_verdict(asm)
    asm.label("decide")
    asm.jmp32_imm(BPF_JNE, R7, CONVERT, "no_opinion")
    _count(asm, COUNTER_CONVERTED)
    asm.mov64_imm(R0, IPPROTO_MPTCP)
    asm.exit()
    asm.label("no_opinion")
    asm.mov64_imm(R0, 0)
    asm.exit()
    return asm


def no_opinion_program() -> bytes:
    """``return 0``: attaching it changes no socket, so the probe may attach it anywhere."""
    asm = Assembler()
    asm.mov64_imm(R0, 0)
    asm.exit()
    return asm.assemble()
