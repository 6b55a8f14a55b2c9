"""The pure parts of bus/flow_control.py; the bus behaviour is in tests/integration."""

from __future__ import annotations

import pytest
from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus

from netpathd.bus.flow_control import cut, install_draining_writes, merge_changes
from netpathd.errors import Failed


def changed(values: dict[str, int], invalidated: list[str]) -> Message:
    body = ["org.netpathd1.Dns", {k: Variant("u", v) for k, v in values.items()}, invalidated]
    return Message.new_signal(
        "/org/netpathd1", "org.freedesktop.DBus.Properties", "PropertiesChanged", "sa{sv}as", body
    )


def test_merged_changes_end_where_the_sequence_ends() -> None:
    merged = merge_changes(changed({"A": 1, "B": 1}, ["C"]), changed({"B": 2, "C": 2}, ["A"]))
    interface, values, invalidated = merged.body
    assert interface == "org.netpathd1.Dns"
    assert {name: variant.value for name, variant in values.items()} == {"B": 2, "C": 2}
    assert invalidated == ["A"]
    assert merged.path == "/org/netpathd1" and merged.member == "PropertiesChanged"


def test_long_names_are_cut() -> None:
    assert cut("Version") == "Version"
    assert cut("X" * 10_000) == "X" * 64 + "..."


async def test_refuses_to_run_when_the_writer_is_not_the_one_it_was_checked_against() -> None:
    with pytest.raises(Failed, match="python-dbus-next #153"):
        install_draining_writes(MessageBus(bus_address="unix:path=/nonexistent"))
