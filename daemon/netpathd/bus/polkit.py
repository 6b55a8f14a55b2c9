"""The one authorization step of every mutating call: uid 0, else polkit decides.

Handlers run in the house order, as systemd-resolved's do: dbus-fast locates the
object, member or property and checks the signature (and a Set's variant type); the
handler validates the values with the service's own pure checks (a request that
cannot work is refused with its precise message, whoever asks); then it calls
`Authorizer.authorize()`; only then does the service apply (checking again, under
its lock, what depends on state).  A denied call therefore changes nothing.

What is asked is what systemd's ``bus-polkit.c`` and firewalld's
``server/decorators.py`` ask: ``CheckAuthorization`` on
``org.freedesktop.PolicyKit1.Authority`` with the caller's unique name as a
``system-bus-name`` subject, so polkitd itself finds the uid, pid and session
(nothing the caller could fake).  Differences, on purpose:

- uid 0 (asked of the bus daemon: ``GetConnectionUnixUser``) is allowed without
  asking polkit, as systemd does for privileged callers; so root keeps working
  whatever happens to polkitd;
- without polkit on the bus only uid 0 is allowed, and the error says so
  (firewalld falls back to uid 0 the same way);
- every question is bounded in time; a timeout or a polkit error is a denial with
  its reason, never an allowance;
- no answer of polkit is cached: a rule changed in ``rules.d`` applies to the next
  call.  Only the caller's uid is remembered, by unique name: the bus daemon never
  reuses a unique name and a connection's credentials are fixed when it connects
  (``SO_PEERCRED``), so asking again could only give the same answer, and root's
  calls cost no round trip after a peer's first.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Mapping
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from netpathd.bus.caller import Caller, current_caller, watch_calls
from netpathd.errors import InteractiveAuthorizationRequired, PermissionDenied

MPTCP_CONFIGURE = "org.netpathd1.mptcp.configure"
MPTCP_APP = "org.netpathd1.mptcp.app"
DNS_CONFIGURE = "org.netpathd1.dns.configure"
DNS_CONFIGURE_RUNTIME = "org.netpathd1.dns.configure-runtime"
RELOAD = "org.netpathd1.reload"

_MANAGER, _DNS, _MPTCP = "org.netpathd1.Manager", "org.netpathd1.Dns", "org.netpathd1.Mptcp"

# Every mutating method and writable property, by (interface, member). Members not
# listed are read-only and open to everyone (tests/unit/test_polkit.py checks this
# table against dbus/*.xml and dbus/org.netpathd1.policy).
ACTIONS: Mapping[tuple[str, str], str] = {
    (_MANAGER, "Reload"): RELOAD,
    (_DNS, "SetConnection"): DNS_CONFIGURE,
    (_DNS, "SetConnectionRuntime"): DNS_CONFIGURE_RUNTIME,
    (_DNS, "RemoveConnection"): DNS_CONFIGURE,
    (_DNS, "GlobalDnsPriority"): DNS_CONFIGURE,
    (_DNS, "AddResolvconf"): DNS_CONFIGURE_RUNTIME,
    (_DNS, "RemoveResolvconf"): DNS_CONFIGURE_RUNTIME,
    (_MPTCP, "Enabled"): MPTCP_CONFIGURE,
    (_MPTCP, "SetEnabledRuntime"): MPTCP_CONFIGURE,
    (_MPTCP, "SetLimits"): MPTCP_CONFIGURE,
    (_MPTCP, "SetLimitsRuntime"): MPTCP_CONFIGURE,
    (_MPTCP, "AddEndpoint"): MPTCP_CONFIGURE,
    (_MPTCP, "AddEndpointRuntime"): MPTCP_CONFIGURE,
    (_MPTCP, "RemoveEndpoint"): MPTCP_CONFIGURE,
    (_MPTCP, "SetEndpointFlags"): MPTCP_CONFIGURE,
    (_MPTCP, "FlushEndpoints"): MPTCP_CONFIGURE,
    (_MPTCP, "EnableApp"): MPTCP_APP,
    (_MPTCP, "DisableApp"): MPTCP_APP,
    (_MPTCP, "SystemWide"): MPTCP_APP,
    (_MPTCP, "SystemWideExclude"): MPTCP_APP,
    (_MPTCP, "SystemWideInclude"): MPTCP_APP,
    (_MPTCP, "RegisterApp"): MPTCP_APP,
}
# Removing what exists only at runtime needs only the runtime action: a VPN client
# that may add its connection must be able to take it away again.
RUNTIME_ACTIONS: Mapping[tuple[str, str], str] = {
    (_DNS, "RemoveConnection"): DNS_CONFIGURE_RUNTIME,
}

# polkitd answers in milliseconds; the bound only keeps a hung polkitd from holding
# calls. With interaction allowed a person may be typing a password: as long as
# D-Bus clients wait by default (busctl, sd-bus: 25 s).
POLKIT_TIMEOUT = 5.0
INTERACTIVE_TIMEOUT = 25.0
BUS_TIMEOUT = 5.0  # GetConnectionUnixUser: the bus daemon itself answers
KNOWN_UIDS = 1024  # peers whose uid is remembered; the oldest is forgotten beyond that

ALLOW_USER_INTERACTION = 1  # CheckAuthorizationFlags
_ABSENT = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)
_POLKIT = ("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")
_AUTHORITY = "org.freedesktop.PolicyKit1.Authority"


def subject(sender: str) -> list[Any]:
    """polkit's ``(sa{sv})`` subject for a peer on the bus: polkitd resolves the rest."""
    return ["system-bus-name", {"name": Variant("s", sender)}]


def check_authorization(
    caller: Caller, action: str, details: Mapping[str, str], cancellation_id: str
) -> Message:
    """The ``CheckAuthorization((sa{sv})sa{ss}us)`` call for one caller and action."""
    return Message(
        destination=_POLKIT[0],
        path=_POLKIT[1],
        interface=_AUTHORITY,
        member="CheckAuthorization",
        signature="(sa{sv})sa{ss}us",
        body=[
            subject(caller.sender),
            action,
            dict(details),
            ALLOW_USER_INTERACTION if caller.interactive else 0,
            cancellation_id,
        ],
    )


def judge(action: str, reply: Message, interactive: bool) -> None:
    """Return if ``reply`` (polkit's answer or error) allows ``action``, else raise why not."""
    if reply.message_type is MessageType.ERROR:
        reason = reply.body[0] if reply.body else ""
        # the bus daemon says so; polkitd itself answers NameHasNoOwner for a vanished caller
        if reply.error_name in _ABSENT and reply.sender == "org.freedesktop.DBus":
            raise PermissionDenied(
                f"not authorized for {action}: polkit is not running on this bus, "
                "so only root may do this"
            )
        raise PermissionDenied(
            f"not authorized for {action}: polkit failed ({reply.error_name}: {reason})"
        )
    (authorized, challenge, _details), *_ = reply.body
    if authorized:
        return
    if challenge and not interactive:
        raise InteractiveAuthorizationRequired(
            f"not authorized for {action} without authentication: allow interactive "
            "authorization in the call, or ask the administrator for a polkit rule"
        )
    raise PermissionDenied(f"not authorized for {action}: polkit refused it")


class Authorizer:
    """Asks, per call, whether the caller may do what the called member does.

    Registers with ``bus`` to see each incoming call's sender and flags
    (`netpathd.bus.caller`): build it before the interfaces are exported.
    """

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self._ids = itertools.count(1)
        self._uids: dict[str, int] = {}  # unique name -> uid, oldest first
        watch_calls(bus)

    async def caller_uid(self) -> int:
        """The uid of the caller of the member running now, as the bus daemon knows it."""
        return await self._uid(current_caller())

    async def authorize(
        self, interface: str, member: str, *, runtime_only: bool = False, **details: str
    ) -> None:
        """Raise PermissionDenied unless the current caller may call ``member`` now.

        ``runtime_only``: the call changes only runtime state (see RUNTIME_ACTIONS).
        ``details`` name what is changed; polkit rules see them (``action.lookup()``).
        """
        key = (interface, member)
        action = RUNTIME_ACTIONS.get(key, ACTIONS[key]) if runtime_only else ACTIONS[key]
        caller = current_caller()
        try:
            uid = await self._uid(caller)
        except PermissionDenied as error:
            raise PermissionDenied(f"not authorized for {action}: {error.message}") from error
        if uid == 0:
            return
        cancellation_id = f"netpathd-{os.getpid()}-{next(self._ids)}"
        request = check_authorization(caller, action, details, cancellation_id)
        timeout = INTERACTIVE_TIMEOUT if caller.interactive else POLKIT_TIMEOUT
        try:
            reply = await asyncio.wait_for(self._bus.call(request), timeout)
        except TimeoutError:
            self._cancel(cancellation_id)
            raise PermissionDenied(
                f"not authorized for {action}: polkit did not answer within {timeout:g} s"
            ) from None
        judge(action, reply, caller.interactive)

    async def caller_pid(self) -> int:
        """The pid of the caller of the member running now, as the bus daemon knows it."""
        return await self._ask_bus("GetConnectionUnixProcessID", current_caller())

    async def _uid(self, caller: Caller) -> int:
        uid = self._uids.get(caller.sender)
        if uid is None:
            uid = await self._ask_bus("GetConnectionUnixUser", caller)
            if len(self._uids) >= KNOWN_UIDS:
                del self._uids[next(iter(self._uids))]
            self._uids[caller.sender] = uid
        return uid

    async def _ask_bus(self, member: str, caller: Caller) -> int:
        request = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature="s",
            body=[caller.sender],
        )
        try:
            reply = await asyncio.wait_for(self._bus.call(request), BUS_TIMEOUT)
        except TimeoutError:
            raise PermissionDenied("the bus did not say who is calling") from None
        if reply.message_type is MessageType.ERROR:
            reason = reply.body[0] if reply.body else reply.error_name
            raise PermissionDenied(f"the bus did not say who is calling: {reason}")
        value: int = reply.body[0]
        return value

    def _cancel(self, cancellation_id: str) -> None:
        """Tell polkitd to drop a question we gave up on (an agent may still show it)."""
        self._bus.send(
            Message(
                destination=_POLKIT[0],
                path=_POLKIT[1],
                interface=_AUTHORITY,
                member="CancelCheckAuthorization",
                signature="s",
                body=[cancellation_id],
                flags=MessageFlag.NO_REPLY_EXPECTED | MessageFlag.NO_AUTOSTART,
            )
        )
