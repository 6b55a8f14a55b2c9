"""--log-level and netpathd.conf's log-level steer netpathd's own loggers only: pyroute2 and
dbus-fast log plenty at debug level about their internals, which a user asking for netpathd's
debug output does not want."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from netpathd import service_manager


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("netpathd")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


def enabled(name: str, level: int) -> bool:
    return logging.getLogger(name).isEnabledFor(level)


def test_debug_is_netpathds_own() -> None:
    service_manager.setup_logging("debug")
    assert enabled("netpathd.kernel.rtnl", logging.DEBUG)
    assert enabled("netpathd", logging.DEBUG)
    for library in ("pyroute2", "pyroute2.netlink.nlsocket", "dbus_fast", "asyncio"):
        assert not enabled(library, logging.DEBUG), library
        assert not enabled(library, logging.INFO), library
        assert enabled(library, logging.WARNING), library


def test_error_silences_library_warnings_too() -> None:
    service_manager.setup_logging("debug")
    service_manager.set_log_level("error")  # what Reload does with netpathd.conf's log-level
    assert not enabled("netpathd.manager", logging.WARNING)
    assert enabled("netpathd.manager", logging.ERROR)
    assert not enabled("pyroute2", logging.WARNING)
    service_manager.set_log_level("info")
    assert enabled("netpathd.manager", logging.INFO)
    assert not enabled("pyroute2", logging.INFO)
    assert enabled("pyroute2", logging.WARNING)
