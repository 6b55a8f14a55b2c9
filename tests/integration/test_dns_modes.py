"""The `[main] dns` mode in a running daemon: Mode, BackendState, ExplainDomains, Reload."""

from __future__ import annotations

import signal

import pytest
from dbus_fast import Variant

from tests.integration.test_dns_daemon import DNS, connection, servers, set_connection, topology
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon
from tests.support.dbus_client import CallError, bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration


async def test_default_mode_explains_the_domain_routes(
    daemon: Daemon, bus: PrivateBus, ns: Netns
) -> None:
    topology(ns)
    async with bus_client(bus.address) as client:
        assert await client.get(DNS, "Mode") == "default"
        assert await client.get(DNS, "BackendState") == "running"
        corp = connection("lan0", "vpn", ipv4_dns=servers("198.51.100.53"))
        corp["ipv4.dns-search"] = Variant("as", ["corp.example"])
        await set_connection(client, "corp", corp)
        await set_connection(client, "wan", connection("wan0", ipv4_dns=servers("192.0.2.53")))
        await client.wait_change(DNS, "Nameservers", ["198.51.100.53", "192.0.2.53"])
        (routes,) = await client.call(DNS, "ExplainDomains")
        by_domain = {r["domain"].value: r for r in routes}
        assert sorted(by_domain) == [".", "corp.example"]
        assert by_domain["."]["connection"].value == "wan"
        assert by_domain["."]["servers"].value == ["192.0.2.53"]
        assert by_domain["corp.example"]["connection"].value == "corp"
        assert by_domain["corp.example"]["losers"].value == []
        assert daemon.resolv_conf.read_text().count("nameserver") == 2


async def test_mode_none_computes_but_never_writes(
    daemon: Daemon, bus: PrivateBus, ns: Netns
) -> None:
    topology(ns)
    (daemon.config_dir / "netpathd.conf").write_text("[main]\ndns = none\n")
    async with bus_client(bus.address) as client:
        await client.call("org.netpathd1.Manager", "Reload")
        assert await client.get(DNS, "Mode") == "none"
        assert await client.get(DNS, "BackendState") == "none"
        await set_connection(client, "wan", connection("wan0", ipv4_dns=servers("192.0.2.53")))
        await client.wait_change(DNS, "Nameservers", ["192.0.2.53"])
        (routes,) = await client.call(DNS, "ExplainDomains")
        assert [r["connection"].value for r in routes] == ["wan"]
        assert not daemon.resolv_conf.exists()


def test_anyone_may_read_the_mode_and_explain_domains(daemon: Daemon, bus: PrivateBus) -> None:
    routes = bus.busctl(
        "call", "org.netpathd1", "/org/netpathd1", DNS, "ExplainDomains", unprivileged=True
    )
    assert routes.strip() == "aa{sv} 0"
    mode = bus.busctl(
        "get-property", "org.netpathd1", "/org/netpathd1", DNS, "Mode", "BackendState",
        unprivileged=True,
    )  # fmt: skip
    assert mode.split() == ["s", '"default"', "s", '"running"']


async def test_a_bad_mode_is_refused_on_reload_and_changes_nothing(
    daemon: Daemon, bus: PrivateBus
) -> None:
    (daemon.config_dir / "netpathd.conf").write_text("[main]\ndns = unbound\n")
    async with bus_client(bus.address) as client:
        with pytest.raises(CallError) as refused:
            await client.call("org.netpathd1.Manager", "Reload")
        assert refused.value.name == "org.netpathd1.Error.InvalidConfiguration"
        assert "dns must be one of default, dnsmasq, systemd-resolved, none" in refused.value.text
        assert await client.get(DNS, "Mode") == "default"


async def test_sighup_switches_the_mode(daemon: Daemon, bus: PrivateBus) -> None:
    async with bus_client(bus.address) as client:
        (daemon.config_dir / "netpathd.conf").write_text("[main]\ndns = none\n")
        daemon.signal(signal.SIGHUP)
        await client.wait_change(DNS, "Mode", "none")
        assert await client.get(DNS, "BackendState") == "none"
