"""Make a TCP program use Multipath TCP by answering its socket() calls from outside.

Why a seccomp supervisor: the Red Hat guide rewrites socket()'s protocol with a SystemTap
kprobe on ``__sys_socket`` (system-wide, taints the kernel, needs kernel-devel); mptcpd's
``mptcpize`` uses LD_PRELOAD, which misses static binaries and Go (raw syscalls); the BPF
selftest ``progs/mptcpify.c`` needs an ``fmod_ret`` program, refused here with EPERM.  A seccomp
filter returning ``SECCOMP_RET_USER_NOTIF`` (kernel/seccomp.c) stops the system call itself,
whatever the language or linking, and ``copy_process()`` hands the filter to every thread and
child, so one listener serves the whole process tree.

How: the child sets PR_SET_NO_NEW_PRIVS (required to install a filter without CAP_SYS_ADMIN),
installs a classic-BPF filter with ``SECCOMP_FILTER_FLAG_NEW_LISTENER``, passes the listener to
us over an AF_UNIX socketpair (SCM_RIGHTS: no ptrace permission needed, unlike pidfd_getfd),
closes its own copy and execs the command.  The filter traps exactly
``socket(AF_INET|AF_INET6, SOCK_STREAM[|SOCK_NONBLOCK|SOCK_CLOEXEC], 0|IPPROTO_TCP)``, comparing
the low 32 bits of each argument because ``__sys_socket()`` takes ints.  For each trap we create
``socket(family, SOCK_STREAM|flags, IPPROTO_MPTCP)`` in the caller's network namespace, check
``SECCOMP_IOCTL_NOTIF_ID_VALID`` (the pid we looked up may have been reused), install it with
``SECCOMP_IOCTL_NOTIF_ADDFD`` and answer with its number (``NOTIF_SEND``).  O_NONBLOCK lives on
the shared open file, O_CLOEXEC is passed as ``newfd_flags``.  If the MPTCP socket cannot be made
(``net.mptcp.enabled=0``: ENOPROTOOPT, no IPv6: EAFNOSUPPORT, ...) or installed, we answer
``SECCOMP_USER_NOTIF_FLAG_CONTINUE``: the kernel runs the original call, so the program gets
plain TCP or the error a native call would give, never a failure of ours.

Why not ADDFD with ``SECCOMP_ADDFD_FLAG_SEND`` (one step): it marks the notification answered
before the caller installs the fd; when our wait is interrupted (SIGSTOP from a profiler or
Ctrl-Z, the freezer) the kernel drops the fd yet the caller's socket() returns 0, and the
restarted ioctl fails with EINPROGRESS or ENOENT (``seccomp_notify_addfd()``).  A plain ADDFD
leaves the notification pending: interrupted, it was done or dequeued, so repeating it is exact,
as for SEND and ID_VALID.  In between, the killable wait (``WAIT_KILLABLE_RECV``, 5.19) keeps the
caller in socket(); before 5.19 a signal landing exactly there costs it one stray descriptor.

Differences from a natively created MPTCP socket:
- the socket is created by the supervisor, so the LSM label (SELinux context), the cgroup
  recorded in ``sk_cgrp_data`` (seen by cgroup-bpf programs and net_cls/net_prio) and the
  security_socket_create() check are the supervisor's.  These normally match: netpathctl runs in
  the same session, unit and cgroup as the command.
- the owner (socket inode uid/gid, ``sk_uid`` used by ``ip rule uidrange`` and the iptables
  owner match, file credentials) is the supervisor's fsuid/fsgid.  The supervisor normally runs
  as the same user; when it runs as root and the caller has switched to another user, we set our
  fsuid/fsgid to the caller's effective ids (read cheaply from the owner of ``/proc/<pid>``)
  around socket(), which covers those uses; supplementary groups are not copied.
- ``getsockopt(SO_PROTOCOL)`` says 262, and a few TCP-level options are refused with EOPNOTSUPP
  (net/mptcp/sockopt.c, ``mptcp_supported_sockopt()``).

Cost (bench/bench_mptcpize.py): each converted socket() takes four context switches (the
notification, ADDFD's request and its completion, the answer) and the supervisor's Python work:
about 17 µs more than a native one when all runs on one CPU.  SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
(6.6) keeps the notification and the answer on the caller's CPU, but ADDFD wakes both sides
with a plain complete() (kernel/seccomp.c ``seccomp_notify_addfd()``, ``seccomp_handle_addfd()``),
which the scheduler sends to an idle CPU when there is one: about 34 µs more then on the 2-vCPU
development machines, and about 80 µs without the synchronous wake-up.  That is the floor of a
supervisor that must not answer with ADDFD+SEND (above).  LD_PRELOAD costs nothing, but misses
static and Go programs.  The data path is untouched: the socket is an ordinary kernel MPTCP
socket.  The filter lets every other call through in the kernel, so UDP, Unix and raw sockets
never reach the supervisor.

Limitations:
- only x86_64 and aarch64; other ABIs on them (i386 ``socketcall``, x32) are let through.
- PR_SET_NO_NEW_PRIVS is inherited: set-user-ID programs and file capabilities (sudo, ping) do
  not gain privileges under ``netpathctl run``.
- a process already under a seccomp listener cannot get a second one (EBUSY, kernel/seccomp.c
  ``has_duplicate_listener()``), so ``netpathctl run`` does not nest.
- a caller in another network namespace is served there via setns(), which needs
  CAP_SYS_ADMIN over that namespace; without it the caller keeps plain TCP.  A caller whose pid
  is not visible in our pid namespace keeps plain TCP too.
- the listener serves processes that outlive the command: when the command exits first, a
  detached copy of the supervisor keeps serving until the last process using the filter is
  reaped (the listener then polls POLLHUP).  If the supervisor is killed, the kernel fails the
  trapped socket() calls of the remaining processes with ENOSYS.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct

# Every wrapped program waits for our start-up: no typing, logging, dataclasses or re here
# (together more than the rest of netpathctl run).  mypy reads TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import NoReturn

IPPROTO_MPTCP = 262

# include/uapi/linux/seccomp.h
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_NOTIF_SIZES = 3
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
_SECCOMP_RET_USER_NOTIF = 0x7FC00000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
_NOTIF_ID_VALID = 0x40082102  # _IOW('!', 2, __u64)
_NOTIF_ADDFD = 0x40182103  # _IOW('!', 3, struct seccomp_notif_addfd)
_NOTIF_SET_FLAGS = 0x40082104  # _IOW('!', 4, __u64); Linux 6.6+
_SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1
# struct seccomp_notif: id, pid, flags, then struct seccomp_data (nr, arch, ip, args[6]).
_NOTIF = struct.Struct("=QIIiIQ6Q")
_RESP = struct.Struct("=QqiI")  # struct seccomp_notif_resp: id, val, error, flags
_ADDFD = struct.Struct("=QIIII")  # struct seccomp_notif_addfd: id, flags, srcfd, newfd, newfd_flags
_ID = struct.Struct("=Q")
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_LOW32 = 0xFFFFFFFF
# What ADDFD and SEND fail with when the notification needs no answer from us any more: the
# caller died (ENOENT; an fd already installed died with it) or it was answered (EINPROGRESS).
_ANSWERED = (errno.ENOENT, errno.EINPROGRESS)
_SOCK_FLAGS = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


class NotSupported(Exception):
    """MPTCP-ization cannot work here; the message says why.  Not errors.NotSupported, whose
    module imports typing: nothing here ever reaches D-Bus."""


class _Arch:
    """What the filter must compare for one architecture (both are little-endian, so the low
    32 bits of argument i sit at offset 16 + 8 * i of struct seccomp_data)."""

    __slots__ = ("audit_arch", "nr_seccomp", "nr_socket")

    def __init__(self, audit_arch: int, nr_socket: int, nr_seccomp: int) -> None:
        self.audit_arch = audit_arch  # include/uapi/linux/audit.h
        self.nr_socket = nr_socket
        self.nr_seccomp = nr_seccomp


_ARCHES = {"x86_64": _Arch(0xC000003E, 41, 317), "aarch64": _Arch(0xC00000B7, 198, 277)}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _arch() -> _Arch:
    machine = os.uname().machine
    if machine not in _ARCHES:
        raise NotSupported(f"architecture {machine} is not supported (x86_64, aarch64)")
    return _ARCHES[machine]


def _build_filter(arch: _Arch) -> bytes:
    """The classic BPF program (struct sock_filter[]) trapping TCP socket() calls.

    Every other system call, architecture or argument combination is allowed untouched, so a
    mistake here can only miss a conversion, never break a program.
    """
    ld, jeq, and_k, ret = 0x20, 0x15, 0x54, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, ALU|AND|K, RET|K
    notify, allow = 13, 14  # indexes of the two return instructions below
    program = [
        (ld, 0, 0, 4),  # 0: A = seccomp_data.arch
        (jeq, 0, allow - 2, arch.audit_arch),  # 1
        (ld, 0, 0, 0),  # 2: A = seccomp_data.nr
        (jeq, 0, allow - 4, arch.nr_socket),  # 3
        (ld, 0, 0, 16),  # 4: A = low 32 bits of args[0], the family
        (jeq, 1, 0, socket.AF_INET),  # 5: to 7
        (jeq, 0, allow - 7, socket.AF_INET6),  # 6
        (ld, 0, 0, 24),  # 7: A = low 32 bits of args[1], the type
        (and_k, 0, 0, ~_SOCK_FLAGS & _LOW32),  # 8
        (jeq, 0, allow - 10, socket.SOCK_STREAM),  # 9
        (ld, 0, 0, 32),  # 10: A = low 32 bits of args[2], the protocol
        (jeq, notify - 12, 0, 0),  # 11
        (jeq, 0, allow - 13, socket.IPPROTO_TCP),  # 12
        (ret, 0, 0, _SECCOMP_RET_USER_NOTIF),  # 13
        (ret, 0, 0, _SECCOMP_RET_ALLOW),  # 14
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _install_filter(arch: _Arch) -> int:
    """Install the filter on the calling thread and return the listener fd (O_CLOEXEC).

    Asks for WAIT_KILLABLE_RECV (5.19) so that once we hold a notification only a fatal signal
    aborts the caller's wait: Go's SIGURG preemption would otherwise restart socket() over and
    over.  Older kernels reject the flag with EINVAL and get the plain listener.
    """
    code = _build_filter(arch)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    nr, mode = ctypes.c_long(arch.nr_seccomp), ctypes.c_long(_SECCOMP_SET_MODE_FILTER)
    fd = -1
    for flags in (
        _SECCOMP_FILTER_FLAG_NEW_LISTENER | _SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        _SECCOMP_FILTER_FLAG_NEW_LISTENER,
    ):
        fd = _libc.syscall(nr, mode, ctypes.c_long(flags), ctypes.byref(prog))
        if fd >= 0 or ctypes.get_errno() != errno.EINVAL:
            break
    return _check(fd)


def probe() -> str | None:
    """Why MPTCP-ization cannot work on this machine, or None when it can.

    Checks what `_install_filter` and `Supervisor` rely on without forking: the architecture,
    seccomp user notification (SECCOMP_GET_NOTIF_SIZES exists since 5.0, like the feature) and
    a repeatable SECCOMP_IOCTL_NOTIF_ADDFD (5.10.y/5.12: "seccomp: Always goto wait if the list
    is empty"; no way to ask but the version).
    """
    try:
        arch = _arch()
    except NotSupported as exc:
        return str(exc)
    sizes = (ctypes.c_uint16 * 3)()
    nr, op = ctypes.c_long(arch.nr_seccomp), ctypes.c_long(_SECCOMP_GET_NOTIF_SIZES)
    if _libc.syscall(nr, op, ctypes.c_long(0), ctypes.byref(sizes)) < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            return "the kernel is built without seccomp filters (CONFIG_SECCOMP_FILTER)"
        return f"the kernel lacks seccomp user notification (Linux 5.0): {os.strerror(err)}"
    release = os.uname().release
    if _version(release) < (5, 10):
        return f"kernel {release} lacks a dependable SECCOMP_IOCTL_NOTIF_ADDFD (Linux 5.10)"
    return None


def _version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release such as ``6.18.0-1-amd64``; (99, 0) if unreadable."""
    major, _dot, rest = release.partition(".")
    minor = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    return (int(major), int(minor)) if major.isdigit() and minor else (99, 0)


def _notif_size() -> int:
    """Bytes the kernel writes on NOTIF_RECV: at least ours, more if a later kernel grew it."""
    sizes = (ctypes.c_uint16 * 3)()
    nr, op = ctypes.c_long(_arch().nr_seccomp), ctypes.c_long(_SECCOMP_GET_NOTIF_SIZES)
    _check(_libc.syscall(nr, op, ctypes.c_long(0), ctypes.byref(sizes)))
    return max(_NOTIF.size, sizes[0])


def _ioctl(listener: int, request: int, arg: bytearray) -> int:
    """A seccomp ioctl repeated after EINTR (a handler ran), which ours allow (module doc)."""
    while True:
        try:
            result: int = fcntl.ioctl(listener, request, arg, True)
        except InterruptedError:
            continue
        return result


class ExecError(OSError):
    """The command could not be executed; errno, strerror and filename come from execvp()."""


class Child:
    """The started command and the listener that serves it and all its descendants."""

    __slots__ = ("listener", "pid")

    def __init__(self, pid: int, listener: int) -> None:
        self.pid = pid
        self.listener = listener


def spawn(argv: list[str], sigmask: Iterable[int]) -> Child:
    """Fork, install the filter in the child, take its listener, exec `argv` there.

    Returns once the exec has happened (the child's CLOEXEC end of the socketpair closes), so a
    missing command is reported here with nothing left running.  `sigmask` is the signal mask
    the command starts with: the caller blocks signals it forwards before calling us.  The child
    sends the listener and closes its own copy *before* exec: a process holding the listener
    would wait forever on its own trapped socket() if we died (shared/README.md).
    """
    arch = _arch()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _child(theirs, arch, argv, sigmask)
    theirs.close()
    with ours:
        msg, fds, _flags, _addr = socket.recv_fds(ours, 8, 1, socket.MSG_CMSG_CLOEXEC)
        if fds:
            msg = ours.recv(8)  # b"" once exec closed the child's end
    if fds and not msg:
        _wake_up_on_this_cpu(fds[0])
        return Child(pid, fds[0])
    for fd in fds:
        os.close(fd)
    os.waitpid(pid, 0)
    err = struct.unpack("=i", msg[1:5])[0] if len(msg) >= 5 else errno.EIO
    if msg[:1] == b"X":
        raise ExecError(err, os.strerror(err), argv[0])
    if err == errno.EBUSY:
        raise NotSupported("already under a seccomp listener (nested netpathctl run?)")
    raise NotSupported(f"cannot install the seccomp filter: {os.strerror(err)}")


def _child(chan: socket.socket, arch: _Arch, argv: list[str], sigmask: Iterable[int]) -> NoReturn:
    """The forked child: never returns into the caller's Python code, whatever happens."""
    try:
        try:
            listener = _install_filter(arch)
        except OSError as exc:
            chan.send(b"E" + struct.pack("=i", exc.errno or errno.EIO))
            os._exit(126)
        socket.send_fds(chan, [b"L"], [listener])
        os.close(listener)
        # Python ignores these at start-up; an ignored disposition would survive exec.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - running COMMAND is the point
        except OSError as exc:
            chan.send(b"X" + struct.pack("=i", exc.errno or errno.EIO))
            os._exit(127 if exc.errno == errno.ENOENT else 126)
    finally:
        os._exit(126)


def _wake_up_on_this_cpu(listener: int) -> None:
    """Ask the kernel to hand each notification over synchronously (Linux 6.6+).

    With SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP the trapped thread and the supervisor
    switch on one CPU (``wake_up_poll_on_current_cpu``, kernel/seccomp.c) instead of
    each waking the other through the scheduler, the cost of every trapped socket().
    Older kernels answer EINVAL (unknown ioctl); the handover then works as before.
    """
    try:
        fcntl.ioctl(listener, _NOTIF_SET_FLAGS, _SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTTY):
            raise


class Supervisor:
    """Answers the notifications of one listener, one at a time (the CLI has nothing else to do).

    Remembers our own network namespace and ids once, so the common case (caller in our
    namespace, same user) costs two stat() calls (one unless we are root) and four ioctls per
    socket(), and allocates little: this loop is the cost of every converted socket().
    """

    def __init__(self, listener: int, report: Callable[[str], None] | None = None) -> None:
        """`report`, when given, is told of every socket converted or left TCP (--verbose)."""
        self.listener = listener
        self._report = report
        self._received = bytearray(_notif_size())
        self._zeros = bytes(len(self._received))  # NOTIF_RECV refuses a buffer not zeroed
        # Written in place for each ioctl; a mutable buffer makes fcntl.ioctl return the result
        self._addfd = bytearray(_ADDFD.size)
        self._answer = bytearray(_RESP.size)
        self._id = bytearray(_ID.size)
        self._own_netns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        own = os.fstat(self._own_netns_fd)
        self._own_netns = (own.st_dev, own.st_ino)
        self._root = os.geteuid() == 0
        self._ids = (os.geteuid(), os.getegid())

    def close(self) -> None:
        os.close(self._own_netns_fd)
        os.close(self.listener)

    def serve_one(self) -> None:
        """Receive one trapped socket() and answer it; call when the listener polls POLLIN."""
        buf = self._received
        buf[:] = self._zeros
        try:
            fcntl.ioctl(self.listener, _NOTIF_RECV, buf, True)
        except OSError as exc:
            # ENOENT: the caller was killed between poll() and here.  EINTR: nothing was taken;
            # back to poll() rather than block here if the notification has gone since.
            if exc.errno in (errno.ENOENT, errno.EINTR):
                return
            raise
        nid, pid, _flags, _nr, _arch, _ip, family, type_, *_rest = _NOTIF.unpack_from(buf)
        family &= _LOW32
        flags = type_ & _SOCK_FLAGS
        sock = self._create(nid, pid, family, flags)
        if sock is None:
            self._continue(nid)
            return
        with sock:
            cloexec = os.O_CLOEXEC if flags & socket.SOCK_CLOEXEC else 0
            _ADDFD.pack_into(self._addfd, 0, nid, 0, sock.fileno(), 0, cloexec)
            try:
                fd = _ioctl(self.listener, _NOTIF_ADDFD, self._addfd)
            except OSError as exc:
                if exc.errno in _ANSWERED:
                    return
                self._tell(f"pid {pid}: kept TCP: cannot install the socket: {exc.strerror}")
                self._continue(nid)  # e.g. EMFILE: the native call reports it in the caller
                return
        if not self._send(nid, fd, 0):
            return
        if self._report is not None:
            name = socket.AddressFamily(family).name
            self._report(f"pid {pid}: socket({name}) is MPTCP, fd {fd}")

    def _tell(self, message: str) -> None:
        if self._report is not None:
            self._report(message)

    def _continue(self, nid: int) -> None:
        self._send(nid, 0, _SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def _send(self, nid: int, val: int, flags: int) -> bool:
        """Answer a notification; False when there is no longer anyone to answer."""
        _RESP.pack_into(self._answer, 0, nid, val, 0, flags)
        try:
            _ioctl(self.listener, _NOTIF_SEND, self._answer)
        except OSError as exc:
            if exc.errno not in _ANSWERED:
                raise
            return False
        return True

    def _valid(self, nid: int) -> bool:
        try:
            _ID.pack_into(self._id, 0, nid)
            _ioctl(self.listener, _NOTIF_ID_VALID, self._id)
        except OSError:
            return False
        return True

    def _create(self, nid: int, pid: int, family: int, flags: int) -> socket.socket | None:
        """The MPTCP socket for caller `pid`, made in its network namespace, or None for TCP.

        Everything read through /proc/<pid> is trusted only after NOTIF_ID_VALID confirms the
        caller still waits, i.e. the pid was not recycled (seccomp_unotify(2), TOCTOU).
        """
        if pid == 0:
            return None  # the caller is not visible in our pid namespace
        netns_fd = None
        proc = f"/proc/{pid}"
        try:
            netns = os.stat(proc + "/ns/net")
            owner = os.stat(proc) if self._root else None
            if (netns.st_dev, netns.st_ino) != self._own_netns:
                netns_fd = os.open(proc + "/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not self._valid(nid):
                return None
            ids = (owner.st_uid, owner.st_gid) if owner else self._ids
            if netns_fd is None:
                return self._socket(pid, family, flags, ids)
            if _libc.setns(netns_fd, _CLONE_NEWNET) < 0:
                self._tell(f"pid {pid}: kept TCP: cannot enter its network namespace")
                return None
            try:
                return self._socket(pid, family, flags, ids)
            finally:
                _check(_libc.setns(self._own_netns_fd, _CLONE_NEWNET))
        finally:
            if netns_fd is not None:
                os.close(netns_fd)

    def _socket(
        self, pid: int, family: int, flags: int, ids: tuple[int, int]
    ) -> socket.socket | None:
        switch = ids != self._ids
        if switch:  # only root gets here: setfsuid() needs CAP_SETUID
            _libc.setfsgid(ids[1])
            _libc.setfsuid(ids[0])
        try:
            return socket.socket(family, socket.SOCK_STREAM | flags, IPPROTO_MPTCP)
        except OSError as exc:
            self._tell(f"pid {pid}: kept TCP: no MPTCP socket: {exc.strerror}")
            return None
        finally:
            if switch:
                _libc.setfsuid(self._ids[0])
                _libc.setfsgid(self._ids[1])
