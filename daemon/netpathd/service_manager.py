"""The daemon's systemd face: sd_notify, the watchdog and journal logging.

systemd-python is imported lazily so that a daemon started outside systemd
(tests, the sandbox) pays nothing for it.  ``sd_notify`` is a no-op without
``NOTIFY_SOCKET``; the watchdog timer only exists when ``WatchdogSec=`` asks
for it, so an idle daemon has no periodic wake-ups at all.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def notify(*assignments: str) -> None:
    """Send ``READY=1`` / ``STATUS=...`` style assignments to the service manager."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd.daemon import notify as sd_notify  # noqa: PLC0415 - only under systemd

    try:
        sd_notify("\n".join(assignments))
    except OSError as error:
        log.warning("sd_notify(%s) failed: %s", ", ".join(assignments), error)


def watchdog_interval() -> float | None:
    """Half of ``WatchdogSec=`` in seconds, when the watchdog is meant for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None


async def run_watchdog(interval: float) -> None:
    """Ping the watchdog while the event loop is alive; a hung loop stops the pings."""
    import asyncio  # noqa: PLC0415 - `netpathd --help` does without it (app.py)

    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _under_journal() -> bool:
    """systemd sets JOURNAL_STREAM to our stderr's device:inode when it goes to the journal."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def _journal_handler() -> logging.Handler:
    from systemd.journal import JournalHandler  # noqa: PLC0415 - only under systemd

    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="netpathd")
    return handler


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("netpathd: %(levelname)s: %(message)s"))
    return handler


def setup_logging(level: str) -> None:
    """Journal with structured fields under systemd, plain stderr otherwise."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_journal_handler() if _under_journal() else _stderr_handler())
    set_log_level(level)


def set_log_level(level: str) -> None:
    """``level`` for netpathd's own loggers; libraries (pyroute2, dbus-fast, asyncio) say only
    warnings and errors, whose internals at debug level would drown ours."""
    ours = logging.getLevelName(level.upper())
    logging.getLogger("netpathd").setLevel(ours)
    logging.getLogger().setLevel(max(ours, logging.WARNING))
