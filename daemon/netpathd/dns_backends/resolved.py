"""dns=systemd-resolved: per-link servers and domains on org.freedesktop.resolve1.

As NetworkManager's `src/core/dns/nm-dns-systemd-resolved.c` does it: for every interface
`SetLinkDNS`, `SetLinkDomains` (search domains, `~domain` routing domains, `~.` on the link
that answers everything else) and `SetLinkDefaultRoute`; `RevertLink` for an interface that
no longer carries a connection; everything again when resolved (re)appears on the bus
(`NameOwnerChanged`), because a restarted resolved has forgotten it all.

A domain claimed by two links goes to the winner only (model.split_dns): resolved would send
the query to both and take the first answer (measured), which breaks the dns-priority rule.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from netpathd.dns_backends.base import (
    BackendContext,
    BackendUnavailable,
    PushingBackend,
    bus_call,
    bus_daemon_match,
)
from netpathd.model.dns_plan import DnsMode, DnsPlan
from netpathd.model.split_dns import LinkDns

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.resolve1"
OBJECT_PATH = "/org/freedesktop/resolve1"
INTERFACE = "org.freedesktop.resolve1.Manager"
STUB_RESOLV_CONF = "/run/systemd/resolve/stub-resolv.conf"
CALL_TIMEOUT = 5.0
NO_SUCH_LINK = "org.freedesktop.resolve1.NoSuchLink"
OWNER_MATCH = (
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
    f"member='NameOwnerChanged',arg0='{BUS_NAME}'"
)


Call = tuple[str, str, list[Any]]


def link_calls(link: LinkDns, configured: LinkDns | None = None) -> list[Call]:
    """The calls that take one link from `configured` (None: nothing known) to `link`.

    Only the parts that differ are sent, servers before domains, so a link never routes a
    domain it has no servers for (resolved would answer it from no server at all).
    """
    calls: list[Call] = []
    if configured is None or configured.servers != link.servers:
        servers = [
            [socket.AF_INET if server.version == 4 else socket.AF_INET6, server.packed]
            for server in link.servers
        ]
        calls.append(("SetLinkDNS", "ia(iay)", [link.ifindex, servers]))
    if configured is None or configured.domains != link.domains:
        calls.append(("SetLinkDomains", "ia(sb)", [link.ifindex, [list(d) for d in link.domains]]))
    if configured is None or configured.default_route != link.default_route:
        calls.append(("SetLinkDefaultRoute", "ib", [link.ifindex, link.default_route]))
    return calls


def link_changes(
    configured: Mapping[int, LinkDns], links: Iterable[LinkDns]
) -> tuple[list[int], list[tuple[LinkDns, list[Call]]]]:
    """The links to revert, and the calls for each link whose view differs from resolved's.

    Unchanged links are the same objects from one plan to the next (model.dns_routes), so
    the comparison is an identity check for all but the changed ones.
    """
    wanted: dict[int, LinkDns] = {}
    changed = []
    for link in links:
        wanted[link.ifindex] = link
        known = configured.get(link.ifindex)
        if known is not link and known != link:
            changed.append((link, link_calls(link, known)))
    reverts = sorted(ifindex for ifindex in configured if ifindex not in wanted)
    return reverts, changed


class _LinkGone(Exception):
    """resolved does not know the ifindex: the kernel deleted the link, and resolved, which
    follows the kernel itself, dropped its configuration with it ("Link 5 not known")."""


class ResolvedBackend(PushingBackend):
    mode = DnsMode.SYSTEMD_RESOLVED

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self._configured: dict[int, LinkDns] = {}  # what resolved has from us, by ifindex
        self._subscribed = False

    def resolver_link(self) -> str:
        return STUB_RESOLV_CONF

    async def push(self, plan: DnsPlan) -> None:
        bus = self._context.bus
        if bus is None:
            raise BackendUnavailable("starting: not connected to the bus yet")
        await self._subscribe(bus)
        reverts, changed = link_changes(self._configured, plan.links)
        for ifindex in reverts:
            with contextlib.suppress(_LinkGone):  # nothing left to revert
                await self._call(bus, "RevertLink", "i", [ifindex])
            del self._configured[ifindex]
        for link, calls in changed:
            try:
                for member, signature, body in calls:
                    await self._call(bus, member, signature, body)
            except _LinkGone:
                # Deleted after this plan was made: the next plan, without it, follows.
                self._configured.pop(link.ifindex, None)
                continue
            self._configured[link.ifindex] = link

    async def close(self) -> None:
        await self.stop_pushing()
        bus = self._context.bus
        if bus is None:
            return
        for ifindex in sorted(self._configured):
            try:
                await self._call(bus, "RevertLink", "i", [ifindex])
            except _LinkGone:
                pass
            except BackendUnavailable as error:
                log.warning("could not revert ifindex %d in resolved: %s", ifindex, error)
                if not bus.connected:
                    break  # every other call would fail the same way
        self._configured.clear()
        if self._subscribed:
            bus.remove_message_handler(self._on_message)
            with contextlib.suppress(Exception):
                await bus_daemon_match(bus, "RemoveMatch", OWNER_MATCH, CALL_TIMEOUT)

    async def _call(self, bus: MessageBus, member: str, signature: str, body: list[Any]) -> None:
        message = Message(
            destination=BUS_NAME,
            path=OBJECT_PATH,
            interface=INTERFACE,
            member=member,
            signature=signature,
            body=body,
        )
        try:
            reply = await bus_call(bus, message, CALL_TIMEOUT)
        except TimeoutError:
            raise BackendUnavailable(
                f"unavailable: systemd-resolved did not answer {member} within {CALL_TIMEOUT}s"
            ) from None
        if reply is None or reply.message_type is not MessageType.ERROR:
            return
        text = reply.body[0] if reply.body else ""
        if reply.error_name == NO_SUCH_LINK:
            raise _LinkGone(text)
        if reply.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown",):
            raise BackendUnavailable("unavailable: systemd-resolved is not on the bus")
        raise BackendUnavailable(
            f"unavailable: {member}({body[0]}) refused: {reply.error_name}: {text}"
        )

    async def _subscribe(self, bus: MessageBus) -> None:
        if self._subscribed:
            return
        bus.add_message_handler(self._on_message)
        self._subscribed = True
        try:
            await bus_daemon_match(bus, "AddMatch", OWNER_MATCH, CALL_TIMEOUT)
        except TimeoutError:
            log.warning("could not watch %s on the bus: no answer to AddMatch", BUS_NAME)

    def _on_message(self, message: Message) -> bool | None:
        if (
            message.message_type is MessageType.SIGNAL
            and message.member == "NameOwnerChanged"
            and message.body
            and message.body[0] == BUS_NAME
        ):
            new_owner = message.body[2]
            # A new resolved knows nothing of what the old one had: push every link again.
            self._configured.clear()
            if new_owner:
                log.info("systemd-resolved appeared on the bus: pushing every link")
                self.wake()
            else:
                self.set_state("unavailable: systemd-resolved left the bus")
        return None
