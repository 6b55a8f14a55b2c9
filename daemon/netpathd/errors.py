"""The one error vocabulary of netpathd.

Every error a caller can see is a `NetpathdError` subclass carrying its D-Bus
error name; the bus adapter maps them in one place and the CLI derives its exit
codes from the same names.  The core raises these without knowing about D-Bus.
"""

from __future__ import annotations

from typing import ClassVar

ERROR_PREFIX = "org.netpathd1.Error."


class NetpathdError(Exception):
    """Base class: a failure a client is allowed to see, with a message saying why."""

    dbus_name: ClassVar[str] = ERROR_PREFIX + "Failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Failed(NetpathdError):
    """The operation was valid but could not be carried out (kernel refusal, I/O)."""


class InvalidArgument(NetpathdError):
    """The request itself is wrong: a value outside its range, an unknown key or flag."""

    dbus_name = ERROR_PREFIX + "InvalidArgument"


class NotFound(NetpathdError):
    """The request names something that does not exist (endpoint id, connection, link)."""

    dbus_name = ERROR_PREFIX + "NotFound"


class AlreadyExists(NetpathdError):
    """The request would duplicate something unique (endpoint address or id)."""

    dbus_name = ERROR_PREFIX + "AlreadyExists"


class PermissionDenied(NetpathdError):
    """The caller is not authorized for a mutating call."""

    dbus_name = ERROR_PREFIX + "PermissionDenied"


class InteractiveAuthorizationRequired(PermissionDenied):
    """polkit would let the person authenticate, but the call did not allow interaction.

    The standard D-Bus name rather than one of ours: clients such as busctl and
    systemctl recognise it (systemd's bus-polkit.c answers the same).
    """

    dbus_name = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"


class NotSupported(NetpathdError):
    """The running kernel or system lacks what the request needs."""

    dbus_name = ERROR_PREFIX + "NotSupported"


class LimitsExceeded(NetpathdError):
    """The caller has too many calls waiting for replies; it may retry once they are answered."""

    dbus_name = ERROR_PREFIX + "LimitsExceeded"


class ConfigError(NetpathdError):
    """A configuration file cannot be used; the message names the file and line."""

    dbus_name = ERROR_PREFIX + "InvalidConfiguration"

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


ALL_ERRORS: tuple[type[NetpathdError], ...] = (
    Failed,
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    NotSupported,
    LimitsExceeded,
    ConfigError,
)
