"""The DNS bus twin asks for the action that covers what the call ends up changing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from netpathd.bus.dns import DnsInterface
from netpathd.bus.polkit import Authorizer
from netpathd.dns_manager import DnsManager
from netpathd.files.resolv_conf import RcManager

VPN = {"connection.interface-name": "tun0", "connection.type": "vpn"}


class PausingAuthorizer:
    """Allows everything, but holds the first question until released."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def authorize(
        self, interface: str, member: str, *, runtime_only: bool = False, **details: str
    ) -> None:
        self.asked.append((member, runtime_only))
        if len(self.asked) == 1:
            self.waiting.set()
            await self.release.wait()


async def test_a_connection_persisted_during_authorization_needs_the_full_action(
    tmp_path: Path,
) -> None:
    dns = DnsManager(tmp_path / "config", tmp_path / "state", tmp_path / "resolv.conf",
                     RcManager.UNMANAGED)  # fmt: skip
    dns.set_connection("vpn", VPN, runtime=True)
    polkit = PausingAuthorizer()
    interface = DnsInterface(dns, cast(Authorizer, polkit))
    remove: Any = DnsInterface.RemoveConnection.__wrapped__  # the handler behind dbus-fast's
    removal = asyncio.ensure_future(remove(interface, "vpn"))
    await polkit.waiting.wait()
    dns.set_connection("vpn", VPN, runtime=False)  # root persists it meanwhile
    polkit.release.set()
    await removal
    assert polkit.asked == [("RemoveConnection", True), ("RemoveConnection", False)]
    assert dns.connections() == []
