"""Authorization with the real polkitd (tests/support/polkit.py): who may change what."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbus_fast import DBusError, NameFlag
from dbus_fast.aio import MessageBus

from netpathd.bus.polkit import ACTIONS, DNS_CONFIGURE_RUNTIME, MPTCP_CONFIGURE
from tests.support.bus import PrivateBus
from tests.support.daemon import Daemon, running_daemon
from tests.support.netns import Netns
from tests.support.polkit import GRANTED, UNGRANTED, Polkit, busctl_as, grant

pytestmark = pytest.mark.integration

OBJECT = ("org.netpathd1", "/org/netpathd1")
MANAGER, DNS, MPTCP = "org.netpathd1.Manager", "org.netpathd1.Dns", "org.netpathd1.Mptcp"
VPN = ("sa{sv}", "vpn", "2", "connection.interface-name", "s", "tun0", "connection.type", "s",
       "vpn")  # fmt: skip
NO_INTERACTION = "--allow-interactive-authorization=no"
RECORD = ("ssubb", "wan0.dhcp", "nameserver 203.0.113.54", "0", "false", "false")

# One call per mutating member (interface, member, busctl words after the member).
MUTATING: list[tuple[str, str, tuple[str, ...]]] = [
    (MANAGER, "Reload", ()),
    (DNS, "SetConnection", VPN),
    (DNS, "SetConnectionRuntime", VPN),
    (DNS, "RemoveConnection", ("s", "wan")),
    (DNS, "GlobalDnsPriority", ("(ii)", "10", "10")),
    (DNS, "AddResolvconf", RECORD),
    (DNS, "RemoveResolvconf", ("s", "wan0.dhcp")),
    (MPTCP, "Enabled", ("b", "false")),
    (MPTCP, "SetEnabledRuntime", ("b", "false")),
    (MPTCP, "SetLimits", ("uu", "3", "3")),
    (MPTCP, "SetLimitsRuntime", ("uu", "3", "3")),
    (MPTCP, "AddEndpoint", ("sassqu", "192.0.2.9", "0", "", "0", "0")),
    (MPTCP, "AddEndpointRuntime", ("sassqu", "192.0.2.9", "0", "", "0", "0")),
    (MPTCP, "RemoveEndpoint", ("u", "7")),
    (MPTCP, "SetEndpointFlags", ("uas", "7", "1", "backup")),
    (MPTCP, "FlushEndpoints", ()),
    (MPTCP, "EnableApp", ("s", "web.service")),
    (MPTCP, "DisableApp", ("s", "web.service")),
    (MPTCP, "SystemWide", ("b", "true")),
    (MPTCP, "SystemWideExclude", ("as", "1", "/user.slice")),
    (MPTCP, "SystemWideInclude", ("as", "1", "/user.slice")),
    (MPTCP, "RegisterApp", ()),
]
PROPERTIES = {
    "GlobalDnsPriority",
    "Enabled",
    "SystemWide",
    "SystemWideExclude",
    "SystemWideInclude",
}


def argv(interface: str, member: str, words: tuple[str, ...]) -> list[str]:
    if member in PROPERTIES:  # as a call: busctl set-property never allows interaction
        return ["call", *OBJECT, "org.freedesktop.DBus.Properties", "Set", "ssv", interface,
                member, *words]  # fmt: skip
    return ["call", *OBJECT, interface, member, *words]


@pytest.fixture
def pk_daemon(ns: Netns, pk_bus: PrivateBus, polkit: Polkit, tmp_path: Path) -> Iterator[Daemon]:
    """netpathd on the polkit bus, with a link for DNS (tests/support/polkit.py: the rest)."""
    ns.ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
    ns.ip("link", "set", "wan0", "up")
    ns.ip("addr", "add", "203.0.113.2/24", "dev", "wan0")
    with running_daemon(ns, pk_bus, tmp_path, f"--systemd-dir={tmp_path / 'units'}") as daemon:
        yield daemon


def ok(bus: PrivateBus, user: str, *words: str) -> str:
    result = busctl_as(bus, user, *words)
    assert result.returncode == 0, f"{user}: busctl {' '.join(words)}: {result.stderr}"
    return result.stdout


def refused(bus: PrivateBus, user: str, *words: str) -> str:
    result = busctl_as(bus, user, *words)
    assert result.returncode != 0, f"{user} was allowed: busctl {' '.join(words)}"
    return result.stderr.strip()


def state(ns: Netns, daemon: Daemon) -> dict[str, object]:
    """Everything a call could change: the kernel's MPTCP, netpathd's files, the resolver file."""
    return {
        "endpoints": ns.ip("mptcp", "endpoint", "show").stdout,
        "limits": ns.ip("mptcp", "limits", "show").stdout,
        "enabled": ns.exec("sysctl", "-n", "net.mptcp.enabled").stdout,
        "files": {
            str(path): path.read_bytes() for path in daemon.workdir.rglob("*") if path.is_file()
        },
    }


def test_the_calls_cover_every_mutating_member() -> None:
    assert {(interface, member) for interface, member, _ in MUTATING} == set(ACTIONS)


async def test_runtime_grant_allows_runtime_dns_only(pk_daemon: Daemon, pk_bus: PrivateBus) -> None:
    ok(pk_bus, GRANTED, "call", *OBJECT, DNS, "SetConnectionRuntime", *VPN)
    assert "tun0" in ok(pk_bus, GRANTED, "call", *OBJECT, DNS, "GetConnections")
    denied = refused(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, DNS, "SetConnection", *VPN)
    assert "not authorized for org.netpathd1.dns.configure" in denied
    ok(pk_bus, GRANTED, "call", *OBJECT, DNS, "RemoveConnection", "s", "vpn")  # runtime only
    ok(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, DNS, "AddResolvconf", *RECORD)
    assert "resolvconf:wan0.dhcp" in ok(pk_bus, GRANTED, "call", *OBJECT, DNS, "GetConnections")
    ok(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, DNS, "RemoveResolvconf", "s", "wan0.dhcp")
    # once persisted (by root), removing it needs dns.configure
    ok(pk_bus, "root", "call", *OBJECT, DNS, "SetConnection", *VPN)
    denied = refused(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, DNS, "RemoveConnection",
                     "s", "vpn")  # fmt: skip
    assert "not authorized for org.netpathd1.dns.configure" in denied
    denied = refused(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, MPTCP, "SetLimits", "uu",
                     "1", "1")  # fmt: skip
    assert "not authorized for org.netpathd1.mptcp.configure" in denied


async def test_no_rule_no_change(pk_daemon: Daemon, pk_bus: PrivateBus, ns: Netns) -> None:
    ok(pk_bus, "root", "call", *OBJECT, DNS, "SetConnection", "sa{sv}", "wan", "3",
       "connection.interface-name", "s", "wan0", "connection.type", "s", "ethernet",
       "ipv4.dns", "as", "1", "203.0.113.53")  # fmt: skip
    ok(pk_bus, "root", "call", *OBJECT, MPTCP, "AddEndpoint", "sassqu", "203.0.113.2", "1",
       "subflow", "", "0", "7")  # fmt: skip
    ok(pk_bus, "root", "call", *OBJECT, DNS, "AddResolvconf", *RECORD)  # for RemoveResolvconf
    assert "203.0.113.53" in pk_daemon.resolv_conf.read_text()
    before = state(ns, pk_daemon)
    for interface, member, words in MUTATING:
        action = ACTIONS[interface, member]
        # interaction allowed (busctl's default) but no agent: polkit says no
        denied = refused(pk_bus, UNGRANTED, *argv(interface, member, words))
        assert f"not authorized for {action}: polkit refused it" in denied, member
        # no interaction: the caller learns that authentication would be needed
        denied = refused(pk_bus, UNGRANTED, NO_INTERACTION, *argv(interface, member, words))
        assert f"not authorized for {action} without authentication" in denied, member
    assert state(ns, pk_daemon) == before


BAD_REQUESTS: list[tuple[str, str, tuple[str, ...], str]] = [
    (MPTCP, "AddEndpoint", ("sassqu", "192.0.2.300", "0", "", "0", "0"), "192.0.2.300"),
    (MPTCP, "AddEndpointRuntime", ("sassqu", "192.0.2.9", "1", "bogus", "", "0", "0"), "bogus"),
    (MPTCP, "SetLimits", ("uu", "9", "1"), "9"),
    (MPTCP, "SetLimitsRuntime", ("uu", "1", "9"), "9"),
    (MPTCP, "RemoveEndpoint", ("u", "0"), "0"),
    (MPTCP, "SetEndpointFlags", ("uas", "7", "1", "signal"), "signal"),
    (MPTCP, "EnableApp", ("s", "nginx"), "nginx"),
    (MPTCP, "DisableApp", ("s", "web@.service"), "template"),
    (DNS, "SetConnection", ("sa{sv}", "x", "1", "bogus.key", "s", "1"), "bogus.key"),
    (DNS, "SetConnectionRuntime", ("sa{sv}", "new", "1", "ipv4.dns", "as", "1", "x"), "required"),
    (DNS, "RemoveConnection", ("s", "nosuch"), "nosuch"),
    (DNS, "AddResolvconf", ("ssubb", "k", "nameserver x", "0", "false", "false"), "not an address"),
    (DNS, "AddResolvconf", ("ssubb", "../k", "", "0", "false", "false"), "resolvconf key"),
    (DNS, "RemoveResolvconf", ("s", "nosuch"), "no resolvconf record 'nosuch'"),
]


async def test_bad_requests_are_refused_before_anyone_is_asked(
    pk_daemon: Daemon, pk_bus: PrivateBus
) -> None:
    """locate -> validate -> authorize: a request that cannot work says why, to anyone."""
    for interface, member, words, named in BAD_REQUESTS:
        refusal = refused(pk_bus, UNGRANTED, NO_INTERACTION, *argv(interface, member, words))
        assert "not authorized" not in refusal, member
        assert named in refusal, (member, refusal)


async def test_root_needs_no_polkit_and_polkit_gone_means_root_only(
    pk_daemon: Daemon, pk_bus: PrivateBus, polkit: Polkit
) -> None:
    ok(pk_bus, "root", NO_INTERACTION, "call", *OBJECT, MPTCP, "SetLimitsRuntime", "uu", "2", "2")
    ok(pk_bus, GRANTED, NO_INTERACTION, "call", *OBJECT, DNS, "SetConnectionRuntime", *VPN)
    polkit.stop()
    denied = refused(pk_bus, GRANTED, "call", *OBJECT, DNS, "SetConnectionRuntime", *VPN)
    assert denied.endswith(
        "not authorized for org.netpathd1.dns.configure-runtime: "
        "polkit is not running on this bus, so only root may do this"
    )
    ok(pk_bus, "root", "call", *OBJECT, DNS, "SetConnectionRuntime", *VPN)
    ok(pk_bus, "root", "set-property", *OBJECT, MPTCP, "Enabled", "b", "true")
    ok(pk_bus, "root", "call", *OBJECT, MANAGER, "Reload")


async def test_a_rule_changed_at_runtime_applies_to_the_next_call(
    pk_daemon: Daemon, pk_bus: PrivateBus, polkit: Polkit, ns: Netns
) -> None:
    limits = ("call", *OBJECT, MPTCP, "SetLimitsRuntime", "uu", "4", "4")
    assert "mptcp.configure" in refused(pk_bus, UNGRANTED, NO_INTERACTION, *limits)
    await polkit.write_rules(grant(MPTCP_CONFIGURE, UNGRANTED))
    ok(pk_bus, UNGRANTED, NO_INTERACTION, *limits)
    assert "subflows 4" in ns.ip("mptcp", "limits", "show").stdout
    await polkit.write_rules(grant(DNS_CONFIGURE_RUNTIME, GRANTED))
    assert "mptcp.configure" in refused(pk_bus, UNGRANTED, NO_INTERACTION, *limits)


async def test_reads_stay_open_to_everyone(pk_daemon: Daemon, pk_bus: PrivateBus) -> None:
    for interface in (MANAGER, DNS, MPTCP):
        ok(pk_bus, UNGRANTED, "call", *OBJECT, "org.freedesktop.DBus.Properties", "GetAll", "s",
           interface)  # fmt: skip
    ok(pk_bus, UNGRANTED, "get-property", *OBJECT, MPTCP, "Endpoints")
    ok(pk_bus, UNGRANTED, "get-property", *OBJECT, DNS, "GlobalDnsPriority")
    ok(pk_bus, UNGRANTED, "introspect", *OBJECT)
    ok(pk_bus, UNGRANTED, "call", *OBJECT, "org.freedesktop.DBus.Peer", "Ping")
    for interface, member in (
        (DNS, "GetConnections"),
        (DNS, "Explain"),
        (DNS, "ExplainDomains"),
        (MPTCP, "GetConnections"),
        (MPTCP, "ListApps"),
    ):
        ok(pk_bus, UNGRANTED, NO_INTERACTION, "call", *OBJECT, interface, member)


def test_only_root_may_own_the_name(bus: PrivateBus) -> None:
    """The opened policy lets everyone call, never own: no one can pose as netpathd."""

    async def request_name() -> str:
        client = await MessageBus(bus_address=bus.address).connect()
        try:
            await client.request_name("org.netpathd1", NameFlag.DO_NOT_QUEUE)
        except DBusError as error:
            return error.type
        finally:
            client.disconnect()
        return "owned"

    pid = os.fork()
    if pid == 0:  # the child, as nobody (forked: the interpreter is unreadable to it)
        code = 2
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            refused = asyncio.run(request_name()) == "org.freedesktop.DBus.Error.AccessDenied"
            code = 0 if refused else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert asyncio.run(request_name()) == "owned"  # root may
