from __future__ import annotations

import json

import pytest

from tests.integration.test_dns_daemon import nameservers, topology
from tests.support.bus import PrivateBus
from tests.support.ctl import netpathctl, netpathctl_ok
from tests.support.daemon import Daemon
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


def ok(bus: PrivateBus, *argv: str) -> str:
    return netpathctl_ok(bus.address, *argv)


def test_set_show_explain_remove(daemon: Daemon, bus: PrivateBus, ns: Netns) -> None:
    topology(ns)
    ok(bus, "dns", "set", "wan", "connection.interface-name", "wan0",
       "connection.type", "ethernet", "ipv4.dns", "192.0.2.53,192.0.2.54",
       "ipv4.dns-search", "example.com")  # fmt: skip
    ok(bus, "dns", "set", "corp", "connection.interface-name", "lan0",
       "connection.type", "vpn", "ipv4.dns", "198.51.100.53")  # fmt: skip
    shown = ok(bus, "dns", "show")
    assert "Nameservers: 198.51.100.53 192.0.2.53 192.0.2.54" in shown
    assert "Search:      example.com" in shown
    data = json.loads(ok(bus, "--json", "dns", "show"))
    assert [conn["name"] for conn in data["connections"]] == ["wan", "corp"]
    assert data["connections"][1]["ipv4.effective-dns-priority"] == 50
    assert nameservers(daemon.resolv_conf) == ["198.51.100.53", "192.0.2.53", "192.0.2.54"]

    explained = ok(bus, "dns", "explain")
    first = explained.splitlines()[1]
    assert first.split()[:4] == ["1", "corp", "lan0", "ipv4"]
    entries = json.loads(ok(bus, "--json", "dns", "explain"))
    assert entries[0]["rank"] == "vpn"

    ok(bus, "dns", "remove", "corp")
    assert nameservers(daemon.resolv_conf) == ["192.0.2.53", "192.0.2.54"]


def test_runtime_after_the_name_as_in_the_readme(daemon: Daemon, bus: PrivateBus) -> None:
    ok(bus, "dns", "set", "tmp", "--runtime", "connection.interface-name", "eth0",
       "connection.type", "vpn", "ipv4.dns", "192.0.2.53")  # fmt: skip
    ok(bus, "dns", "set", "mid", "connection.interface-name", "eth0", "--runtime",
       "connection.type", "ethernet", "ipv4.dns", "192.0.2.54")  # fmt: skip
    ok(bus, "dns", "set", "saved", "connection.interface-name", "eth0",
       "connection.type", "ethernet", "ipv4.dns", "192.0.2.55")  # fmt: skip
    names = [conn["name"] for conn in json.loads(ok(bus, "dns", "show", "--json"))["connections"]]
    assert names == ["tmp", "mid", "saved"]
    persisted = [p.name for p in (daemon.state_dir / "dns-connections").iterdir()]
    assert persisted == ["saved.conf"]


def test_json_keys_are_snake_case(daemon: Daemon, bus: PrivateBus, ns: Netns) -> None:
    """One style for netpathctl's own keys; a connection's settings keep their nmcli names."""
    topology(ns)
    ok(bus, "dns", "set", "wan", "connection.interface-name", "wan0", "connection.type", "ethernet",
       "ipv4.dns", "192.0.2.53")  # fmt: skip
    shown = json.loads(ok(bus, "dns", "show", "--json"))
    assert set(shown) == {"connections", "nameservers", "search", "resolv_conf",
                          "global_dns_priority", "mode", "backend_state", "domains"}  # fmt: skip
    (entry, *_) = json.loads(ok(bus, "dns", "explain", "--json"))
    assert "priority_source" in entry
    assert all("-" not in key for key in entry)


def test_global_priority_round_trip(daemon: Daemon, bus: PrivateBus) -> None:
    ok(bus, "dns", "global-priority", "20", "30")
    assert json.loads(ok(bus, "--json", "dns", "global-priority")) == {"ipv4": 20, "ipv6": 30}


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["dns", "set", "x", "ipv4.dns-priority", "high"], 2, "takes an integer"),
        (["dns", "set", "x", "ipv4.dnz", "1"], 2, "unknown setting 'ipv4.dnz'"),
        (["dns", "set", "x", "ipv4.dns"], 2, "has no value"),
        (["dns", "set", "x", "ipv4.dns", "192.0.2.53"], 2, "connection.interface-name"),
        (["dns", "remove", "nothing"], 3, "no DNS connection named 'nothing'"),
        (["dns", "global-priority", "1"], 2, "takes IPV4 IPV6"),
        (["dns", "global-priority", "2147483648", "0"], 2, "is outside -2147483647..2147483647"),
        (
            ["dns", "set", "x", "ipv4.dns-priority", "2147483648"],
            2,
            "ipv4.dns-priority: 2147483648 is outside -2147483647..2147483647",
        ),
        (
            ["dns", "set", "x", "connection.interface-name", "e1", "connection.type", "ether"],
            2,
            "unknown connection type 'ether' (known: 6lowpan, adsl,",
        ),
        (
            ["dns", "set", "x", "connection.interface-name", "e1", "connection.type", "ether"],
            2,
            "did you mean 'ethernet'?",
        ),
        (["dns", "shwo"], 2, "did you mean 'show'?"),
    ],
)
def test_errors_have_messages_and_exit_codes(
    daemon: Daemon, bus: PrivateBus, argv: list[str], code: int, message: str
) -> None:
    result = netpathctl(bus.address, *argv)
    assert result.returncode == code, result.stderr
    assert message in result.stderr


def test_show_and_explain_domains(daemon: Daemon, bus: PrivateBus, ns: Netns) -> None:
    topology(ns)
    ok(bus, "dns", "set", "wan", "connection.interface-name", "wan0",
       "connection.type", "ethernet", "ipv4.dns", "192.0.2.53",
       "ipv4.dns-search", "~corp.example")  # fmt: skip
    ok(bus, "dns", "set", "corp", "connection.interface-name", "lan0",
       "connection.type", "vpn", "ipv4.dns", "198.51.100.53",
       "ipv4.dns-search", "~corp.example")  # fmt: skip
    shown = ok(bus, "dns", "show")
    assert "Mode:        default (running)" in shown
    routes = {line.split()[0]: line.split()[1:3] for line in shown.splitlines()[-2:]}
    assert routes == {".": ["wan", "wan0"], "corp.example": ["corp", "lan0"]}
    data = json.loads(ok(bus, "--json", "dns", "show"))
    assert (data["mode"], data["backend_state"]) == ("default", "running")
    assert [route["domain"] for route in data["domains"]] == [".", "corp.example"]

    explained = ok(bus, "dns", "explain", "--domains").splitlines()
    assert explained[0].split() == ["DOMAIN", "CONNECTION", "DEVICE", "PRIORITY", "SERVERS", "WHY"]
    (lost,) = [line for line in explained if "lost:" in line]
    assert lost.split()[:4] == ["lost:", "wan", "wan0", "100"]
    assert "same priority" not in lost and "claims it with lower priority 50" in lost
    entries = json.loads(ok(bus, "--json", "dns", "explain", "--domains"))
    (corp,) = [entry for entry in entries if entry["domain"] == "corp.example"]
    assert corp["losers"] == [
        {
            "connection": "wan",
            "interface": "wan0",
            "priority": 100,
            "reason": "corp claims it with lower priority 50",
        }
    ]
