"""Can this kernel run the TCP → MPTCP program?  A probe that says why not.

It does what the real program needs, with a program that does nothing: loads ``return 0``
(no opinion, so attaching changes no socket) as BPF_PROG_TYPE_TRACING / BPF_MODIFY_RETURN for
``update_socket_protocol``, attaches it with BPF_LINK_CREATE, and closes both.  That one step
covers capabilities, LSMs, the fmod_ret allow-list, the verifier, the JIT and the trampoline;
each refusal is reported with its reason, the first that applies:

1. no BTF (``/sys/kernel/btf/vmlinux``, CONFIG_DEBUG_INFO_BTF): tracing programs attach by id;
2. no FUNC ``update_socket_protocol`` in it (Linux 6.6+ with CONFIG_MPTCP);
3. no ``nsproxy``/``net_ns``/``ns.inum`` members where the netns check reads them;
4. the kernel refusing the load (EPERM: lockdown, a BPF LSM or policy, no CAP_BPF) or the
   attach (ENOTSUPP 524: no trampolines on this architecture or kernel).

Only the standard library; the BTF walk returns to the event loop in steps (`probe_in_loop`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import platform
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from netpathd.kernel import bpf_syscall
from netpathd.kernel.bpf_mptcpify import (
    ATTACH_FUNCTION,
    NetnsOffsets,
    netns_offsets,
    no_opinion_program,
)
from netpathd.kernel.bpf_syscall import BPF_MODIFY_RETURN, BPF_PROG_TYPE_TRACING
from netpathd.kernel.btf import BTF_KIND_FUNC, BtfError, parse_steps, run_steps

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
LOCKDOWN = Path("/sys/kernel/security/lockdown")
ENOTSUPP = 524  # the kernel-internal "operation not supported" a missing trampoline gives


@dataclass(frozen=True, slots=True)
class Hook:
    """What loading the real program needs, learnt by the probe."""

    attach_btf_id: int
    offsets: NetnsOffsets


@dataclass(frozen=True, slots=True)
class ProbeResult:
    available: bool
    reason: str  # "" when available
    hook: Hook | None = None

    def __str__(self) -> str:
        return "available" if self.available else f"unavailable: {self.reason}"


Steps = Generator[None, None, ProbeResult]


def _lockdown() -> str:
    try:
        text = LOCKDOWN.read_text()
    except OSError:
        return ""
    mode = text[text.find("[") + 1 : text.find("]")] if "[" in text else ""
    return f"; kernel lockdown is {mode}" if mode and mode != "none" else ""


def _errno_name(error: OSError) -> str:
    if error.errno == ENOTSUPP:
        return "ENOTSUPP"
    return errno.errorcode.get(error.errno or 0, str(error.errno))


def refused(error: OSError, step: str = "load") -> ProbeResult:
    """The reason for a refused load or attach, with the verifier's words when it spoke."""
    reason = f"the kernel refused to {step} the fmod_ret program for {ATTACH_FUNCTION}: "
    reason += f"{_errno_name(error)} ({error.strerror or os.strerror(error.errno or 0)})"
    if error.errno == errno.EPERM:
        reason += " - lockdown, a BPF LSM or policy, or no CAP_BPF/CAP_PERFMON" + _lockdown()
    elif error.errno == ENOTSUPP:
        reason += " - no BPF trampolines on this kernel or architecture"
    log = " ".join(str(error.filename or "").split())
    reason += f"; verifier: {log}" if log else "; the verifier log is empty"
    return ProbeResult(False, reason)


def _no_function() -> ProbeResult:
    return ProbeResult(
        False,
        f"the kernel ({platform.release()}) has no {ATTACH_FUNCTION}() "
        "(Linux 6.6+ with CONFIG_MPTCP)",
    )


def _load_no_opinion(attach_btf_id: int) -> int:
    fd, _log = bpf_syscall.prog_load(
        no_opinion_program(), BPF_PROG_TYPE_TRACING, name="netpathd_probe",
        expected_attach_type=BPF_MODIFY_RETURN, attach_btf_id=attach_btf_id,
    )  # fmt: skip
    return fd


def _probe_steps(btf_path: Path) -> Steps:  # noqa: PLR0911 - one return per reason
    try:
        blob = btf_path.read_bytes()
    except FileNotFoundError:
        return ProbeResult(False, f"the kernel has no BTF ({btf_path} missing)")
    except OSError as error:
        return ProbeResult(False, f"cannot read {btf_path}: {error.strerror}")
    if b"\0" + ATTACH_FUNCTION.encode() + b"\0" not in blob:
        return _no_function()
    # A kernel that refuses tracing programs refuses them whatever they attach to (measured:
    # EPERM for id 0 as for the real id), so ask that first and spare the walk.
    try:
        os.close(_load_no_opinion(0))  # id 0 cannot attach; should a kernel accept it, ignore
    except OSError as error:
        if error.errno == errno.EPERM:
            return refused(error)
    try:
        btf = yield from parse_steps(blob)
        func_id = btf.find(ATTACH_FUNCTION, BTF_KIND_FUNC).id
    except BtfError as error:
        if "no BTF type" in str(error):
            return _no_function()
        return ProbeResult(False, f"cannot parse {btf_path}: {error}")
    try:
        offsets = netns_offsets(btf)
    except BtfError as error:
        return ProbeResult(False, f"cannot find the network namespace in {btf_path}: {error}")
    try:
        prog_fd = _load_no_opinion(func_id)
    except OSError as error:
        return refused(error)
    try:
        os.close(bpf_syscall.link_create(prog_fd, BPF_MODIFY_RETURN))
    except OSError as error:
        return refused(error, "attach")
    finally:
        os.close(prog_fd)
    return ProbeResult(True, "", Hook(func_id, offsets))


def probe(btf_path: Path = VMLINUX_BTF) -> ProbeResult:
    """Whether the TCP → MPTCP program can run here, and if not, the first reason why."""
    return run_steps(_probe_steps(btf_path))


async def probe_in_loop(btf_path: Path = VMLINUX_BTF) -> ProbeResult:
    """`probe()` for the daemon: the BTF walk returns to the event loop in steps, so no
    D-Bus call or netlink event waits behind it."""
    steps = _probe_steps(btf_path)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: ProbeResult = done.value
            return result
        await asyncio.sleep(0)
