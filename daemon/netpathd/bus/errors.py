"""The one place where netpathd errors become D-Bus errors.

Every exported method and property setter is wrapped with `dbus_errors`: a
`NetpathdError` reaches the client with its own ``org.netpathd1.Error.*`` name
and message; anything else is logged with its traceback here and reaches the
client as a generic Failed without one (dbus-fast would otherwise answer with
an opaque ``org.freedesktop.DBus.Error.ServiceError``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from dbus_fast import DBusError

from netpathd.errors import Failed, NetpathdError

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def to_dbus_error(error: Exception) -> DBusError:
    if isinstance(error, DBusError):
        return error
    if isinstance(error, NetpathdError):
        return DBusError(error.dbus_name, error.message)
    log.error("internal error: %r", error, exc_info=error)
    return DBusError(Failed.dbus_name, f"internal error ({type(error).__name__}); see the log")


def dbus_errors(handler: Callable[P, R]) -> Callable[P, R]:
    """Translate exceptions of a sync or async handler (apply under the dbus-fast decorator)."""
    if inspect.iscoroutinefunction(handler):
        async_handler = cast(Callable[P, Awaitable[object]], handler)

        @functools.wraps(handler)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> object:
            try:
                return await async_handler(*args, **kwargs)
            except Exception as error:
                raise to_dbus_error(error) from error

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except Exception as error:
            raise to_dbus_error(error) from error

    return wrapper
