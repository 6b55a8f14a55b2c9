"""bpf(2) through ctypes: maps, program load, links, bpffs pins and object info.

Only what netpathd's TCP→MPTCP program needs, with ``union bpf_attr`` laid out by hand
(include/uapi/linux/bpf.h); bytes past what a command reads stay zero, as the kernel demands.
Every failure is an OSError with the errno; a refused load carries the verifier's log as
``filename`` (the kernel writes its reasons there).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM = 0, 1, 2, 3
BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD, BPF_OBJ_PIN, BPF_OBJ_GET = 4, 5, 6, 7
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_LINK_CREATE = 13, 15, 28

BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY = 1, 2, 6
BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACING = 2, 26
BPF_MODIFY_RETURN = 26
BPF_ANY = 0

_SYSCALL_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_ATTR_SIZE = 128
LOG_SIZE = 1 << 16
POSSIBLE_CPUS = Path("/sys/devices/system/cpu/possible")


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    number = _SYSCALL_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2) number unknown for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.syscall(number, cmd, attr, len(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _attr() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_ATTR_SIZE)


@dataclass(frozen=True, slots=True)
class MapSpec:
    name: str  # at most 15 bytes: the kernel's BPF_OBJ_NAME_LEN
    map_type: int
    key_size: int
    value_size: int
    max_entries: int


def map_create(spec: MapSpec) -> int:
    attr = _attr()
    struct.pack_into(
        "=IIIII", attr, 0, spec.map_type, spec.key_size, spec.value_size, spec.max_entries, 0
    )
    struct.pack_into("=16s", attr, 28, spec.name.encode())
    return bpf(BPF_MAP_CREATE, attr)


Buffer = ctypes.Array[ctypes.c_char]


def _elem_attr(fd: int, key: Buffer, value: int, flags: int) -> Buffer:
    attr = _attr()
    struct.pack_into("=IIQQQ", attr, 0, fd, 0, ctypes.addressof(key), value, flags)
    return attr


def map_update(fd: int, key: bytes, value: bytes) -> None:
    key_buf = ctypes.create_string_buffer(key, len(key))
    value_buf = ctypes.create_string_buffer(value, len(value))
    bpf(BPF_MAP_UPDATE_ELEM, _elem_attr(fd, key_buf, ctypes.addressof(value_buf), BPF_ANY))


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; False when it was not there."""
    key_buf = ctypes.create_string_buffer(key, len(key))
    try:
        bpf(BPF_MAP_DELETE_ELEM, _elem_attr(fd, key_buf, 0, 0))
    except FileNotFoundError:
        return False
    return True


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    key_buf = ctypes.create_string_buffer(key, len(key))
    value_buf = ctypes.create_string_buffer(value_size)
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(fd, key_buf, ctypes.addressof(value_buf), 0))
    except FileNotFoundError:
        return None
    return value_buf.raw


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """Every key of a hash map (BPF_MAP_GET_NEXT_KEY from no key, until ENOENT)."""
    keys: list[bytes] = []
    current = ctypes.create_string_buffer(key_size)
    following = ctypes.create_string_buffer(key_size)
    attr = _attr()
    first = True
    while True:
        struct.pack_into(
            "=IIQQ", attr, 0, fd, 0, 0 if first else ctypes.addressof(current),
            ctypes.addressof(following),
        )  # fmt: skip
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, attr)
        except FileNotFoundError:
            return keys
        keys.append(following.raw)
        ctypes.memmove(current, following, key_size)
        first = False


def possible_cpus(path: Path = POSSIBLE_CPUS) -> int:
    """How many values a per-CPU map holds per key: the kernel's possible CPUs ("0-3,5")."""
    count = 0
    for part in path.read_text().strip().split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def prog_load(
    program: bytes,
    prog_type: int,
    *,
    name: str,
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
) -> tuple[int, str]:
    """BPF_PROG_LOAD: (fd, verifier log); a refusal's OSError carries the log as filename."""
    insns = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = _attr()
    struct.pack_into(
        "=IIQQIIQ", attr, 0, prog_type, len(program) // 8, ctypes.addressof(insns),
        ctypes.addressof(license_), 1, LOG_SIZE, ctypes.addressof(log),
    )  # fmt: skip
    struct.pack_into("=16s", attr, 48, name.encode())  # prog_name
    struct.pack_into("=I", attr, 68, expected_attach_type)
    struct.pack_into("=I", attr, 108, attach_btf_id)
    try:
        fd = bpf(BPF_PROG_LOAD, attr)
    except OSError as error:
        error.filename = log.value.decode(errors="replace").strip()
        raise
    return fd, log.value.decode(errors="replace").strip()


def link_create(prog_fd: int, attach_type: int) -> int:
    """BPF_LINK_CREATE for a tracing program: its target came with the load (attach_btf_id)."""
    attr = _attr()
    struct.pack_into("=IIII", attr, 0, prog_fd, 0, attach_type, 0)
    return bpf(BPF_LINK_CREATE, attr)


def obj_pin(fd: int, path: Path) -> None:
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = _attr()
    struct.pack_into("=QII", attr, 0, ctypes.addressof(name), fd, 0)
    bpf(BPF_OBJ_PIN, attr)


def obj_get(path: Path) -> int:
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = _attr()
    struct.pack_into("=QII", attr, 0, ctypes.addressof(name), 0, 0)
    return bpf(BPF_OBJ_GET, attr)


def _info(fd: int, size: int) -> bytes:
    info = ctypes.create_string_buffer(size)
    attr = _attr()
    struct.pack_into("=IIQ", attr, 0, fd, size, ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.raw


def prog_tag(prog_fd: int) -> bytes:
    """The kernel's tag of a loaded program (``struct bpf_prog_info.tag``).

    The kernel computes it (SHA-1 up to 6.17, SHA-256 since) over the instructions with map
    fds zeroed, so the same program has the same tag whatever fds its maps had.
    """
    return _info(prog_fd, 64)[8:16]


def link_prog_id(link_fd: int) -> int:
    """``struct bpf_link_info.prog_id`` of a link."""
    _type, _id, prog_id = struct.unpack_from("=III", _info(link_fd, 64))
    return int(prog_id)


def prog_fd_by_id(prog_id: int) -> int:
    attr = _attr()
    struct.pack_into("=I", attr, 0, prog_id)
    return bpf(BPF_PROG_GET_FD_BY_ID, attr)
