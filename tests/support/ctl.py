"""Run netpathctl as a user would, as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.daemon import daemon_env

NETPATHCTL = (sys.executable, "-m", "netpathd.ctl.main")  # this tree's, not an installed one


def netpathctl(bus_address: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NETPATHCTL, f"--bus-address={bus_address}", *argv],
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def netpathctl_ok(bus_address: str, *argv: str) -> str:
    """netpathctl's stdout; the test fails with its stderr when it exits non-zero."""
    result = netpathctl(bus_address, *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout


def netpathctl_as(
    uid: int, bus_address: str, *argv: str, terminal: bool = False
) -> tuple[int, str]:
    """netpathctl's exit code and stderr when run by ``uid``, stdin a terminal or not.

    Forked, not executed: the interpreter lives under /root, which other uids cannot
    read, so the child drops to ``uid`` with netpathctl's modules already imported.
    """
    from netpathd.ctl import client, main  # noqa: F401, PLC0415 - loaded before the fork

    read_end, write_end = os.pipe()
    controller, tty = os.openpty() if terminal else (-1, -1)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 125
        try:
            os.dup2(write_end, 2)
            os.dup2(tty if terminal else os.open(os.devnull, os.O_RDONLY), 0)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - pytest had replaced it
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            code = main.main([f"--bus-address={bus_address}", *argv])
        except BaseException as error:  # reported to the test through stderr
            print(f"netpathctl_as: {error!r}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as stderr:
        text = stderr.read()
    _, status = os.waitpid(pid, 0)
    if terminal:
        os.close(controller)
        os.close(tty)
    return os.waitstatus_to_exitcode(status), text
