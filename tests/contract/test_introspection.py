"""The exported D-Bus surface equals the XML in dbus/, which is the checked contract."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration

DBUS_DIR = Path(__file__).resolve().parents[2] / "dbus"
CONTRACT_FILES = sorted(DBUS_DIR.glob("org.netpathd1.*.xml"))

Surface = dict[str, list[tuple[str, ...]]]


def surface(interface: ET.Element) -> Surface:
    """Methods, signals and properties with their argument types and directions.

    Input argument names are part of the surface (busctl shows them); output
    names are documentation only, as dbus-fast does not export them.
    """

    def args(member: ET.Element, default_direction: str) -> tuple[str, ...]:
        described = []
        for arg in member.findall("arg"):
            direction = arg.get("direction", default_direction)
            name = arg.get("name") if direction == "in" else "-"
            described.append(f"{name}:{arg.get('type')}:{direction}")
        return tuple(described)

    return {
        "methods": sorted((m.get("name", ""), *args(m, "in")) for m in interface.findall("method")),
        "signals": sorted(
            (s.get("name", ""), *args(s, "out")) for s in interface.findall("signal")
        ),
        "properties": sorted(
            (p.get("name", ""), p.get("type", ""), p.get("access", ""))
            for p in interface.findall("property")
        ),
    }


def test_every_interface_has_a_contract_file() -> None:
    names = {path.name.removesuffix(".xml") for path in CONTRACT_FILES}
    assert "org.netpathd1.Manager" in names


def test_live_introspection_matches_the_xml(daemon: Daemon, bus: PrivateBus) -> None:
    live = ET.fromstring(
        bus.busctl("--xml-interface", "introspect", "org.netpathd1", "/org/netpathd1")
    )
    live_interfaces = {i.get("name"): i for i in live.findall("interface")}
    for path in CONTRACT_FILES:
        (expected,) = ET.parse(path).getroot().findall("interface")
        name = expected.get("name")
        assert name == path.name.removesuffix(".xml")
        assert name in live_interfaces, f"{name} is not exported"
        assert surface(live_interfaces[name]) == surface(expected), name
    exported = {name for name in live_interfaces if name and name.startswith("org.netpathd1.")}
    assert exported == {path.name.removesuffix(".xml") for path in CONTRACT_FILES}
    for standard in ("Introspectable", "Properties", "Peer"):
        assert f"org.freedesktop.DBus.{standard}" in live_interfaces


def test_a_wrong_signature_is_unknown_method_as_the_readme_says(
    daemon: Daemon, bus: PrivateBus
) -> None:
    """dbus-fast picks the handler by name and signature, so netpathd never sees the call."""
    refused = bus.busctl_result(
        "call",
        "org.netpathd1",
        "/org/netpathd1",
        "org.netpathd1.Mptcp",
        "SetLimits",
        "ii",
        "1",
        "1",
    )
    assert refused.returncode != 0
    assert 'SetLimits with signature "ii" could not be found' in refused.stderr
    wrong_type = bus.busctl_result(
        "set-property",
        "org.netpathd1",
        "/org/netpathd1",
        "org.netpathd1.Mptcp",
        "Enabled",
        "u",
        "1",
    )
    assert wrong_type.returncode != 0
    assert 'wrong signature for property. expected "b"' in wrong_type.stderr
    readme = (DBUS_DIR.parent / "README.md").read_text()
    assert "`org.freedesktop.DBus.Error.UnknownMethod`" in readme
    assert "`org.freedesktop.DBus.Error.InvalidSignature`" in readme
