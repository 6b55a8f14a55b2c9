"""What the back-ends send: dnsmasq's command line and SetServersEx, resolved's SetLink*."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from pathlib import Path
from typing import Any, cast

import pytest
from dbus_fast import Message, MessageType

from netpathd.dns_backends.base import BackendContext, PushingBackend
from netpathd.dns_backends.dnsmasq import (
    BUS_NAME,
    OBJECT_PATH,
    DnsmasqBackend,
    dnsmasq_argv,
    servers_ex,
)
from netpathd.dns_backends.resolv_file import ResolverFileWriter
from netpathd.dns_backends.resolved import ResolvedBackend, link_calls, link_changes
from netpathd.files.resolv_conf import RcManager
from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority
from netpathd.model.dns_plan import DnsMode, DnsPlan
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.split_dns import LinkDns, plan


def test_dnsmasq_runs_with_networkmanagers_flags_under_our_name() -> None:
    assert dnsmasq_argv("/usr/sbin/dnsmasq", "/etc/netpathd/dnsmasq.d") == [
        "/usr/sbin/dnsmasq",
        "--no-resolv",
        "--keep-in-foreground",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file=",
        "--listen-address=127.0.0.1",
        "--cache-size=400",
        "--clear-on-reload",
        "--conf-file=/dev/null",
        "--enable-dbus=org.netpathd1.dnsmasq",
        "--conf-dir=/etc/netpathd/dnsmasq.d",
    ]
    assert not any(arg.startswith("--conf-dir") for arg in dnsmasq_argv("dnsmasq", None))


def test_servers_ex_gives_the_default_and_each_domain_its_own_entry() -> None:
    def family(server: str, *search: str) -> DnsFamilyConfig:
        return DnsFamilyConfig(servers=(ipaddress.IPv4Address(server),), search=search)

    corp = DnsConnection("corp", "tun0", "vpn", ipv4=family("198.51.100.53", "~corp.example"))
    wan = DnsConnection(
        "wan", "eth0", "ethernet", ipv4=family("192.0.2.53", "~lab.test"), created_seq=1
    )
    state = NetState(
        links={1: Link(1, "eth0", True), 2: Link(2, "tun0", True)},
        default_routes=frozenset({DefaultRoute(Family.IPV4, 1, 100)}),
    )
    result = plan([corp, wan], state, GlobalDnsPriority(), DnsMode.DNSMASQ)
    assert servers_ex(result) == [
        ["192.0.2.53@eth0"],
        ["198.51.100.53@tun0", "corp.example"],
        ["192.0.2.53@eth0", "lab.test"],
    ]


def test_resolved_gets_one_links_whole_configuration_in_three_calls() -> None:
    link = LinkDns(
        ifindex=7,
        interface_name="tun0",
        connection="corp",
        servers=(ipaddress.IPv4Address("198.51.100.53"), ipaddress.IPv6Address("2001:db8::53")),
        domains=(("corp.example", True), ("lab.test", False), (".", True)),
        default_route=True,
    )
    assert link_calls(link) == [
        (
            "SetLinkDNS",
            "ia(iay)",
            [
                7,
                [
                    [2, bytes([198, 51, 100, 53])],
                    [10, bytes.fromhex("20010db8" + "0" * 20 + "0053")],
                ],
            ],
        ),
        (
            "SetLinkDomains",
            "ia(sb)",
            [7, [["corp.example", True], ["lab.test", False], [".", True]]],
        ),
        ("SetLinkDefaultRoute", "ib", [7, True]),
    ]


TUN = LinkDns(
    ifindex=7,
    interface_name="tun0",
    connection="corp",
    servers=(ipaddress.IPv4Address("198.51.100.53"),),
    domains=(("corp.example", True),),
    default_route=False,
)


def test_resolved_gets_only_the_parts_of_a_link_that_changed() -> None:
    took_default = dataclasses.replace(TUN, domains=(*TUN.domains, (".", True)), default_route=True)
    assert [member for member, _, _ in link_calls(took_default, TUN)] == [
        "SetLinkDomains",
        "SetLinkDefaultRoute",
    ]
    moved = dataclasses.replace(TUN, servers=(ipaddress.IPv4Address("198.51.100.54"),))
    assert [member for member, _, _ in link_calls(moved, TUN)] == ["SetLinkDNS"]
    assert link_calls(TUN, TUN) == []


def test_resolved_is_told_only_of_the_links_whose_view_changed() -> None:
    eth = dataclasses.replace(TUN, ifindex=3, interface_name="eth0", connection="wan")
    gone = dataclasses.replace(TUN, ifindex=9, interface_name="wg0", connection="old")
    same_value = dataclasses.replace(eth)  # equal, though another object
    configured = {3: eth, 7: TUN, 9: gone}
    moved = dataclasses.replace(TUN, default_route=True)
    reverts, changed = link_changes(configured, (same_value, moved))
    assert reverts == [9]
    assert changed == [(moved, [("SetLinkDefaultRoute", "ib", [7, True])])]


class FakeBus:
    """Answers every call; records what dnsmasq would have been sent."""

    def __init__(self) -> None:
        self.sent: list[list[list[str]]] = []

    async def call(self, message: Message) -> Message:
        self.sent.append(message.body[0])
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1)


async def test_dnsmasq_is_sent_a_server_list_only_when_it_changes(tmp_path: Path) -> None:
    bus = FakeBus()
    files = ResolverFileWriter(tmp_path / "resolv.conf", tmp_path / "copy", RcManager.FILE)
    context = BackendContext(cast(Any, bus), None, files, tmp_path, lambda _: None)
    backend = DnsmasqBackend(context)
    backend._process = cast(Any, object())  # as if _run_once had started one
    state = NetState(
        links={1: Link(1, "eth0", True), 2: Link(2, "tun0", True)},
        default_routes=frozenset({DefaultRoute(Family.IPV4, 1, 100)}),
    )
    servers = (ipaddress.IPv4Address("198.51.100.53"),)
    corp = DnsConnection("corp", "tun0", "vpn", ipv4=DnsFamilyConfig(servers, ("corp.example",)))
    wan = DnsConnection("wan", "eth0", "ethernet", ipv4=DnsFamilyConfig(servers, ()), created_seq=1)

    await backend.push(plan([corp, wan], state, GlobalDnsPriority(), DnsMode.DNSMASQ))
    # Another priority decides no contest: the same list, nothing sent.
    await backend.push(plan([corp, wan], state, GlobalDnsPriority(ipv4=20), DnsMode.DNSMASQ))
    assert len(bus.sent) == 1
    lab = dataclasses.replace(corp, ipv4=DnsFamilyConfig(servers, ("corp.example", "lab.test")))
    await backend.push(plan([lab, wan], state, GlobalDnsPriority(), DnsMode.DNSMASQ))
    assert len(bus.sent) == 2 and ["198.51.100.53@tun0", "corp.example", "lab.test"] in bus.sent[1]
    # A restarted dnsmasq signals Up and has no servers: it gets the same list again.
    up = Message.new_signal(OBJECT_PATH, BUS_NAME, "Up")
    assert up.message_type is MessageType.SIGNAL
    backend._on_message(up)
    await backend.push(plan([lab, wan], state, GlobalDnsPriority(), DnsMode.DNSMASQ))
    assert len(bus.sent) == 3 and bus.sent[2] == bus.sent[1]


class UnstoppableProcess:
    """A dnsmasq that dropped to another user while netpathd lacks CAP_KILL: signals are EPERM."""

    pid = 4242
    returncode = None

    def send_signal(self, _signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")


async def test_a_dnsmasq_netpathd_may_not_signal_is_reported_and_the_switch_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = ResolverFileWriter(tmp_path / "resolv.conf", tmp_path / "copy", RcManager.FILE)
    backend = DnsmasqBackend(BackendContext(None, None, files, tmp_path, lambda _: None))
    backend._process = cast(Any, UnstoppableProcess())  # as if _run_once had started it
    # Seen under the shipped unit without CAP_KILL: the EPERM ended the reload that switched
    # modes, so READY=1 never followed RELOADING=1 and `systemctl reload` hung.
    await backend.close()
    assert "cannot stop dnsmasq (pid 4242)" in caplog.text
    assert "CAP_KILL" in caplog.text


class RecordingBackend(PushingBackend):
    mode = DnsMode.DNSMASQ

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.pushed: list[DnsPlan] = []

    async def push(self, plan: DnsPlan) -> None:
        self.pushed.append(plan)

    async def close(self) -> None:
        await self.stop_pushing()


async def test_a_resolver_file_that_cannot_be_written_is_a_state_not_a_dead_pusher(
    tmp_path: Path,
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    impossible = tmp_path / "not-a-directory" / "resolv.conf"
    states: asyncio.Queue[str] = asyncio.Queue()
    files = ResolverFileWriter(impossible, tmp_path / "state" / "resolv.conf", RcManager.FILE)
    backend = RecordingBackend(BackendContext(None, None, files, tmp_path, states.put_nowait))
    corp = DnsConnection("corp", "tun0", "vpn", ipv4=DnsFamilyConfig(search=("corp.example",)))
    state = NetState(links={1: Link(1, "tun0", True)})
    backend.apply(plan([corp], state, GlobalDnsPriority(), DnsMode.DNSMASQ))
    failed = await asyncio.wait_for(states.get(), 5)
    assert failed.startswith("failed: cannot write the resolver file:"), failed
    files.path = tmp_path / "resolv.conf"
    backend.apply(plan([corp], state, GlobalDnsPriority(ipv4=5), DnsMode.DNSMASQ))
    assert await asyncio.wait_for(states.get(), 5) == "running"
    assert len(backend.pushed) == 2
    await backend.close()


class ResolvedBus(FakeBus):
    """resolved as measured: a link the kernel deleted is NoSuchLink ("Link 5 not known")."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known
        self.calls: list[tuple[str, int]] = []

    def add_message_handler(self, handler: object) -> None:
        """Signals never come here."""

    async def call(self, message: Message) -> Message:
        if message.destination == "org.freedesktop.DBus":
            return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1)
        ifindex = message.body[0]
        self.calls.append((message.member, ifindex))
        if ifindex in self.known:
            return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1)
        return Message(
            message_type=MessageType.ERROR,
            reply_serial=1,
            error_name="org.freedesktop.resolve1.NoSuchLink",
            signature="s",
            body=[f"Link {ifindex} not known"],
        )


async def test_a_deleted_link_does_not_stop_resolved_from_getting_the_others(
    tmp_path: Path,
) -> None:
    """A VPN link deleted: resolved forgot it already, so its RevertLink is NoSuchLink."""
    bus = ResolvedBus({1, 2})
    files = ResolverFileWriter(tmp_path / "resolv.conf", tmp_path / "copy", RcManager.FILE)
    backend = ResolvedBackend(BackendContext(cast(Any, bus), None, files, tmp_path, print))
    eth, tun = Link(1, "eth0", True), Link(2, "tun0", True)
    servers = (ipaddress.IPv4Address("198.51.100.53"),)
    corp = DnsConnection("corp", "tun0", "vpn", ipv4=DnsFamilyConfig(servers, ("~corp.example",)))
    wan = DnsConnection("wan", "eth0", "ethernet", ipv4=DnsFamilyConfig(servers), created_seq=1)
    both = NetState(links={1: eth, 2: tun})
    await backend.push(plan([corp, wan], both, GlobalDnsPriority(), DnsMode.SYSTEMD_RESOLVED))
    bus.known.discard(2)  # the kernel deleted tun0, and resolved followed
    lab = dataclasses.replace(wan, ipv4=DnsFamilyConfig(servers, ("~lab.example",)))
    only_eth = NetState(links={1: eth})
    await backend.push(plan([corp, lab], only_eth, GlobalDnsPriority(), DnsMode.SYSTEMD_RESOLVED))
    assert ("RevertLink", 2) in bus.calls
    assert bus.calls[-1] == ("SetLinkDomains", 1)
    bus.calls.clear()
    await backend.push(plan([corp, lab], only_eth, GlobalDnsPriority(), DnsMode.SYSTEMD_RESOLVED))
    assert bus.calls == []  # nothing left to revert or to send


async def test_dnsmasqs_own_words_are_logged_a_line_each_once_prefixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """dnsmasq starts each stderr line with "dnsmasq: " itself (what the shipped unit
    without its drop-in printed, measured in the VM tier)."""
    fake = tmp_path / "dnsmasq"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'dnsmasq: failed to create listening socket for 127.0.0.1: Permission denied' >&2\n"
        "echo 'dnsmasq: FAILED to start up' >&2\n"
        "exit 2\n"
    )
    fake.chmod(0o755)
    files = ResolverFileWriter(tmp_path / "resolv.conf", tmp_path / "copy", RcManager.FILE)
    backend = DnsmasqBackend(BackendContext(None, None, files, tmp_path, lambda _: None))
    with caplog.at_level(logging.WARNING):
        assert await backend._run_once(str(fake)) == 2
    await backend.close()
    said = [record.getMessage() for record in caplog.records if "dnsmasq" in record.getMessage()]
    assert said == [
        "dnsmasq: failed to create listening socket for 127.0.0.1: Permission denied",
        "dnsmasq: FAILED to start up",
    ]
