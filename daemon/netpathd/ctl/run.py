"""``netpathctl run [--verbose] -- COMMAND [ARGS...]``: run a TCP program over Multipath TCP.

The mechanism (seccomp filter, listener, socket creation) is `netpathd.ctl.mptcpize`; this is
the shell-like half.  netpathctl stays the command's parent so that scripts see what a shell
would show them: the command's exit status, 128+N when signal N killed it, 127/126 with a
"No such file or directory"/"Permission denied" message when it cannot be executed, and 125
when netpathctl itself cannot MPTCP-ize it: the convention of env(1), timeout(1) and chroot(1),
so a wrapper's own failure never looks like one of the command's exit codes (the verbs table's
D-Bus-derived codes 1-7 would).

Signals sent to netpathctl (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) are forwarded to the
command.  They are blocked and read from a signalfd, because the sender matters: a signal the
kernel raised for the terminal's whole foreground process group (Ctrl-C, Ctrl-\\, window
resize, hang-up: si_code SI_KERNEL, drivers/tty/n_tty.c isig()) already reached the command,
which shares our process group, and forwarding it would deliver it twice (sudo makes the same
check).  The supervisor polls the listener, a pidfd of the command and the signalfd; being a
CLI process it has nothing else to do and needs no event loop.

When the command exits while processes it started still use the filter (a daemonized child),
a detached copy of the supervisor (new session, stdio on /dev/null, so callers reading our
output are not held up) serves them until the listener reports POLLHUP, i.e. until the kernel
released the last task using the filter (kernel/seccomp.c ``seccomp_notify_poll()``).  Its
sockets are not logged by ``--verbose``.  SIGTERM stops it; the remaining processes then get
ENOSYS from socket().
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import struct
import sys

from netpathd.ctl import mptcpize

# Every wrapped program waits for our start-up, so this path imports neither typing nor
# argparse (both only for type checking and --help or a mistyped line); mypy reads
# TYPE_CHECKING as true whatever its value.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

FORWARDED = frozenset(
    {
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
    }
)
CANNOT_RUN = 125  # netpathctl's own failure, as env(1) and timeout(1) report theirs
_SI_KERNEL = 0x80  # include/uapi/asm-generic/siginfo.h
# struct signalfd_siginfo starts with ssi_signo, ssi_errno, ssi_code, ssi_pid
_SIGINFO = struct.Struct("=IiiI")
_SIGINFO_SIZE = 128
_POLL_GONE = select.POLLHUP | select.POLLERR

_libc = ctypes.CDLL(None, use_errno=True)


def _signalfd(signals: frozenset[signal.Signals]) -> int:
    """A non-blocking signalfd for `signals`, which the caller must keep blocked."""
    mask = ctypes.create_string_buffer(128)  # glibc's sigset_t
    _libc.sigemptyset(mask)
    for signum in signals:
        _libc.sigaddset(mask, signum)
    fd: int = _libc.signalfd(-1, mask, os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _forward(sigfd: int, pid: int) -> None:
    try:
        data = os.read(sigfd, _SIGINFO_SIZE * 16)
    except BlockingIOError:
        return
    for offset in range(0, len(data), _SIGINFO_SIZE):
        signo, _errno, code, _sender = _SIGINFO.unpack_from(data, offset)
        if code == _SI_KERNEL and os.getpgid(pid) == os.getpgrp():
            continue  # the terminal signalled our whole process group, the command included
        os.kill(pid, signo)  # the pid is our unreaped child: it cannot have been reused


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _supervise(child: mptcpize.Child, supervisor: mptcpize.Supervisor, sigfd: int) -> int:
    """Serve the listener and forward signals until the command exits; its shell exit code."""
    pidfd = os.pidfd_open(child.pid)
    poller = select.poll()
    for fd in (child.listener, pidfd, sigfd):
        poller.register(fd, select.POLLIN)
    try:
        while True:
            for fd, events in poller.poll():  # PEP 475: retried after EINTR
                if fd == pidfd:
                    _pid, status = os.waitpid(child.pid, 0)
                    return _exit_code(status)
                if fd == sigfd:
                    _forward(sigfd, child.pid)
                elif events & select.POLLIN:
                    supervisor.serve_one()
                elif events & _POLL_GONE:
                    poller.unregister(fd)  # cannot happen while the command lives; never spin
    finally:
        os.close(pidfd)


def _users_left(listener: int) -> bool:
    """True while some task still runs under the filter (the command was reaped already)."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    return not any(events & _POLL_GONE for _fd, events in poller.poll(0))


def _serve_detached(supervisor: mptcpize.Supervisor) -> None:
    """Fork a supervisor for the command's leftover processes; returns in the parent only."""
    if os.fork() != 0:
        return
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        poller = select.poll()
        poller.register(supervisor.listener, select.POLLIN)
        while True:
            for _fd, events in poller.poll():
                if events & select.POLLIN:
                    supervisor.serve_one()
                elif events & _POLL_GONE:
                    os._exit(0)
    finally:
        os._exit(1)


def build_parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - see TYPE_CHECKING above

    parser = argparse.ArgumentParser(
        prog="netpathctl run",
        description="Run COMMAND so that its TCP sockets, and its children's, are MPTCP.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log each converted socket to stderr"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    return parser


def parse_with_argparse(argv: list[str]) -> tuple[list[str], bool]:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: list[str] = args.command
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("a COMMAND is required, e.g. netpathctl run -- curl https://example.org")
    return command, bool(args.verbose)


def plain_arguments(argv: list[str]) -> tuple[list[str], bool] | None:
    """The usual lines, read as argparse reads them, or None for anything else.

    The usual lines: ``-v``/``--verbose`` any number of times, then ``-- COMMAND...`` or a
    COMMAND that does not start with a dash.  Help, abbreviations, bundled flags and
    mistakes are argparse's, with its messages.
    """
    verbose = False
    for index, word in enumerate(argv):
        if word in ("-v", "--verbose"):
            verbose = True
            continue
        command = argv[index + 1 :] if word == "--" else argv[index:]
        if not command or (word != "--" and word.startswith("-")):
            return None
        return command, verbose
    return None


def parse(argv: list[str]) -> tuple[list[str], bool]:
    """The command to run and whether to log each socket; argparse's exit 2 when unusable."""
    return plain_arguments(argv) or parse_with_argparse(argv)


def _stderr_line(message: str) -> None:
    print(f"netpathctl: {message}", file=sys.stderr, flush=True)


def run(argv: list[str]) -> int:
    """The ``netpathctl run`` verb: the command's exit status, or 125/126/127 when it can't."""
    command, verbose = parse(argv)
    reason = mptcpize.probe()
    if reason is not None:
        print(f"netpathctl: run: {reason}", file=sys.stderr)
        return CANNOT_RUN
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    sigfd = _signalfd(FORWARDED)
    try:
        try:
            child = mptcpize.spawn(command, old_mask)
        except mptcpize.ExecError as exc:
            print(f"netpathctl: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 127 if exc.errno == errno.ENOENT else 126
        except mptcpize.NotSupported as exc:
            print(f"netpathctl: run: {exc}", file=sys.stderr)
            return CANNOT_RUN
        supervisor = mptcpize.Supervisor(child.listener, _stderr_line if verbose else None)
        try:
            code = _supervise(child, supervisor, sigfd)
            if _users_left(child.listener):
                _serve_detached(supervisor)
        finally:
            supervisor.close()
        return code
    finally:
        os.close(sigfd)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
