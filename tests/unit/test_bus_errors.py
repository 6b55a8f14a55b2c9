from __future__ import annotations

import asyncio

import pytest
from dbus_fast import DBusError

from netpathd.bus.errors import dbus_errors
from netpathd.errors import ALL_ERRORS, ERROR_PREFIX, InvalidArgument, NotFound


def test_every_error_has_its_own_name_under_the_prefix() -> None:
    names = [error.dbus_name for error in ALL_ERRORS]
    assert len(set(names)) == len(names)
    assert all(name.startswith(ERROR_PREFIX) for name in names)


def test_netpathd_errors_keep_name_and_message() -> None:
    @dbus_errors
    def handler() -> None:
        raise NotFound("no endpoint with id 7")

    with pytest.raises(DBusError) as caught:
        handler()
    assert caught.value.type == "org.netpathd1.Error.NotFound"
    assert caught.value.text == "no endpoint with id 7"


def test_unknown_exceptions_become_failed_without_details() -> None:
    @dbus_errors
    async def handler() -> None:
        raise KeyError("secret internal detail")

    with pytest.raises(DBusError) as caught:
        asyncio.run(handler())
    assert caught.value.type == "org.netpathd1.Error.Failed"
    assert "secret" not in caught.value.text


def test_wrapped_coroutines_stay_coroutines() -> None:
    @dbus_errors
    async def handler() -> int:
        raise InvalidArgument("bad")

    assert asyncio.iscoroutinefunction(handler)
