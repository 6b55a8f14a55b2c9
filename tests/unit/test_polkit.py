"""The authorization step: which action each member needs, what polkit is asked, and
how its answers (and silences) become errors. polkitd itself: tests/integration/test_polkit.py."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from netpathd.bus import polkit
from netpathd.bus.caller import Caller
from netpathd.bus.polkit import ACTIONS, RUNTIME_ACTIONS, Authorizer, check_authorization, judge
from netpathd.errors import InteractiveAuthorizationRequired, PermissionDenied

DBUS_DIR = Path(__file__).resolve().parents[2] / "dbus"
# Members that change nothing: open to everyone, no polkit question.
READERS = {
    ("org.netpathd1.Dns", "GetConnections"),
    ("org.netpathd1.Dns", "Explain"),
    ("org.netpathd1.Dns", "ExplainDomains"),
    ("org.netpathd1.Mptcp", "GetConnections"),
    ("org.netpathd1.Mptcp", "ListApps"),
    ("org.netpathd1.Mptcp", "ListAppBackends"),
}
ISSUE_ACTIONS = {
    "org.netpathd1.mptcp.configure",
    "org.netpathd1.mptcp.app",
    "org.netpathd1.dns.configure",
    "org.netpathd1.dns.configure-runtime",
    "org.netpathd1.reload",
}


def contract_members() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(methods, writable properties) of every interface in dbus/*.xml."""
    methods, writable = set(), set()
    for path in sorted(DBUS_DIR.glob("org.netpathd1.*.xml")):
        for interface in ET.parse(path).getroot().findall("interface"):
            name = interface.get("name", "")
            methods |= {(name, m.get("name", "")) for m in interface.findall("method")}
            writable |= {
                (name, p.get("name", ""))
                for p in interface.findall("property")
                if p.get("access") in {"write", "readwrite"}
            }
    return methods, writable


def test_every_mutating_member_of_the_contract_needs_an_action() -> None:
    methods, writable = contract_members()
    assert writable  # Mptcp.Enabled, Dns.GlobalDnsPriority
    assert set(ACTIONS) == (methods - READERS) | writable
    assert methods >= READERS
    assert set(RUNTIME_ACTIONS) <= set(ACTIONS)


def test_the_actions_are_the_issues_and_the_policy_file_defines_each() -> None:
    root = ET.parse(DBUS_DIR / "org.netpathd1.policy").getroot()
    actions = {action.get("id"): action for action in root.findall("action")}
    assert set(ACTIONS.values()) | set(RUNTIME_ACTIONS.values()) == ISSUE_ACTIONS == set(actions)
    for action in actions.values():
        assert action.findtext("description")
        assert action.findtext("message")
        assert action.findtext("defaults/allow_active") == "auth_admin_keep"
        assert action.findtext("defaults/allow_inactive") == "auth_admin"
        assert action.findtext("defaults/allow_any") == "auth_admin"


def test_runtime_dns_changes_have_their_own_action() -> None:
    assert ACTIONS["org.netpathd1.Dns", "SetConnectionRuntime"] == polkit.DNS_CONFIGURE_RUNTIME
    assert ACTIONS["org.netpathd1.Dns", "SetConnection"] == polkit.DNS_CONFIGURE
    assert ACTIONS["org.netpathd1.Mptcp", "EnableApp"] == polkit.MPTCP_APP
    assert ACTIONS["org.netpathd1.Mptcp", "Enabled"] == polkit.MPTCP_CONFIGURE
    assert ACTIONS["org.netpathd1.Manager", "Reload"] == polkit.RELOAD


def call_message(flags: MessageFlag = MessageFlag.NONE, sender: str = ":1.7") -> Message:
    return Message(
        destination="org.netpathd1",
        path="/org/netpathd1",
        interface="org.netpathd1.Dns",
        member="SetConnection",
        signature="",
        flags=flags,
        sender=sender,
        serial=9,
    )


def test_the_subject_is_the_callers_unique_name() -> None:
    assert polkit.subject(":1.7") == ["system-bus-name", {"name": Variant("s", ":1.7")}]
    request = check_authorization(Caller(":1.7", False), "org.netpathd1.reload", {}, "id-1")
    assert request.signature == "(sa{sv})sa{ss}us"
    assert request.destination == "org.freedesktop.PolicyKit1"
    assert request.path == "/org/freedesktop/PolicyKit1/Authority"
    assert request.member == "CheckAuthorization"
    assert request.body[0] == ["system-bus-name", {"name": Variant("s", ":1.7")}]


def test_interaction_is_allowed_only_when_the_call_allowed_it() -> None:
    plain = Caller.of(call_message())
    asking = Caller.of(call_message(MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION))
    both = Caller.of(
        call_message(MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION | MessageFlag.NO_AUTOSTART)
    )
    assert (plain.interactive, asking.interactive, both.interactive) == (False, True, True)
    details = {"connection": "vpn"}
    body = check_authorization(asking, polkit.DNS_CONFIGURE, details, "id-2").body
    assert body[1:] == [polkit.DNS_CONFIGURE, details, 1, "id-2"]
    assert check_authorization(plain, polkit.DNS_CONFIGURE, details, "id-3").body[3] == 0


def answer(authorized: bool, challenge: bool) -> Message:
    return Message(
        message_type=MessageType.METHOD_RETURN,
        reply_serial=1,
        signature="(bba{ss})",
        body=[[authorized, challenge, {}]],
    )


def error(name: str, text: str, sender: str = "org.freedesktop.DBus") -> Message:
    return Message(
        message_type=MessageType.ERROR,
        reply_serial=1,
        error_name=name,
        signature="s",
        body=[text],
        sender=sender,
    )


def test_polkits_answers_become_allowance_or_typed_denials() -> None:
    action = polkit.DNS_CONFIGURE
    judge(action, answer(True, False), interactive=False)
    with pytest.raises(InteractiveAuthorizationRequired) as challenged:
        judge(action, answer(False, True), interactive=False)
    assert challenged.value.dbus_name == (
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
    )
    assert action in challenged.value.message
    for interactive in (False, True):
        with pytest.raises(PermissionDenied) as denied:
            judge(action, answer(False, interactive), interactive=interactive)
        assert type(denied.value) is PermissionDenied
        assert denied.value.message.startswith(f"not authorized for {action}: ")


def test_polkit_absent_or_failing_is_a_denial_with_the_reason() -> None:
    absent = error("org.freedesktop.DBus.Error.ServiceUnknown", "not provided by any .service")
    with pytest.raises(PermissionDenied, match="polkit is not running on this bus, so only root"):
        judge(polkit.RELOAD, absent, interactive=False)
    vanished = error("org.freedesktop.DBus.Error.NameHasNoOwner", "no :1.7", sender=":1.3")
    with pytest.raises(PermissionDenied, match=r"polkit failed \(.*NameHasNoOwner: no :1.7"):
        judge(polkit.RELOAD, vanished, interactive=False)
    failed = error("org.freedesktop.PolicyKit1.Error.Failed", "Action x is not registered", ":1.3")
    with pytest.raises(PermissionDenied, match=r"polkit failed \(.*Error.Failed: Action x"):
        judge(polkit.RELOAD, failed, interactive=False)


class FakeBus:
    """Answers GetConnectionUnixUser with ``uid`` and polkit with ``polkit_answer``."""

    def __init__(self, uid: int, polkit_answer: Callable[[], Awaitable[Message]]) -> None:
        self.uid = uid
        self.polkit_answer = polkit_answer
        self.handlers: list[Callable[[Message], Any]] = []
        self.asked: list[Message] = []
        self.sent: list[Message] = []

    def add_message_handler(self, handler: Callable[[Message], Any]) -> None:
        self.handlers.append(handler)

    async def call(self, message: Message) -> Message:
        self.asked.append(message)
        if message.member == "GetConnectionUnixUser":
            return Message(
                message_type=MessageType.METHOD_RETURN,
                reply_serial=1,
                signature="u",
                body=[self.uid],
            )
        return await self.polkit_answer()

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def deliver(self, message: Message) -> None:
        for handler in self.handlers:
            handler(message)


async def allowed() -> Message:
    return answer(True, False)


async def authorize_as(bus: FakeBus, flags: MessageFlag = MessageFlag.NONE) -> None:
    authorizer = Authorizer(cast(MessageBus, bus))
    bus.deliver(call_message(flags, sender=":1.42"))
    await authorizer.authorize("org.netpathd1.Dns", "SetConnection", connection="wan")


async def test_uid_0_is_allowed_without_asking_polkit() -> None:
    bus = FakeBus(0, allowed)
    await authorize_as(bus)
    assert [m.member for m in bus.asked] == ["GetConnectionUnixUser"]
    assert bus.asked[0].body == [":1.42"]


async def test_other_uids_are_asked_about_on_every_call() -> None:
    bus = FakeBus(1000, allowed)
    await authorize_as(bus, MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
    await authorize_as(bus)
    checks = [m for m in bus.asked if m.member == "CheckAuthorization"]
    assert len(checks) == 2  # no answer is cached
    assert checks[0].body[0] == polkit.subject(":1.42")
    assert checks[0].body[1:4] == [polkit.DNS_CONFIGURE, {"connection": "wan"}, 1]
    assert checks[1].body[3] == 0


async def test_a_silent_polkit_is_a_denial_and_the_question_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(polkit, "POLKIT_TIMEOUT", 0.05)
    bus = FakeBus(1000, never)
    with pytest.raises(PermissionDenied, match=r"polkit did not answer within 0\.05 s"):
        await authorize_as(bus)
    check = next(m for m in bus.asked if m.member == "CheckAuthorization")
    (cancel,) = bus.sent
    assert cancel.member == "CancelCheckAuthorization"
    assert cancel.body == [check.body[4]]


async def test_runtime_only_removal_asks_for_the_runtime_action() -> None:
    bus = FakeBus(1000, allowed)
    authorizer = Authorizer(cast(MessageBus, bus))
    bus.deliver(call_message(sender=":1.43"))
    await authorizer.authorize("org.netpathd1.Dns", "RemoveConnection", runtime_only=True)
    await authorizer.authorize("org.netpathd1.Dns", "RemoveConnection")
    actions = [m.body[1] for m in bus.asked if m.member == "CheckAuthorization"]
    assert actions == [polkit.DNS_CONFIGURE_RUNTIME, polkit.DNS_CONFIGURE]


async def test_the_bus_is_asked_a_callers_uid_once() -> None:
    """A unique name is never reused and its connection's uid never changes: one question
    per peer, not one per call (root's calls then cost no round trip at all)."""
    bus = FakeBus(0, allowed)
    authorizer = Authorizer(cast(MessageBus, bus))
    for sender in (":1.42", ":1.42", ":1.43", ":1.42"):
        bus.deliver(call_message(sender=sender))
        await authorizer.authorize("org.netpathd1.Dns", "SetConnection", connection="wan")
    assert [m.body for m in bus.asked] == [[":1.42"], [":1.43"]]


async def test_a_uid_the_bus_would_not_give_is_asked_again() -> None:
    bus = FakeBus(0, allowed)
    authorizer = Authorizer(cast(MessageBus, bus))
    bus.deliver(call_message(sender=":1.42"))
    refused = Message(
        message_type=MessageType.ERROR, error_name="org.freedesktop.DBus.Error.NameHasNoOwner",
        reply_serial=1, signature="s", body=["gone"],
    )  # fmt: skip
    real_call = bus.call

    async def refuse_once(message: Message) -> Message:
        bus.call = real_call  # type: ignore[method-assign]
        bus.asked.append(message)
        return refused

    bus.call = refuse_once  # type: ignore[method-assign]
    with pytest.raises(PermissionDenied, match="gone"):
        await authorizer.authorize("org.netpathd1.Dns", "SetConnection", connection="wan")
    await authorizer.authorize("org.netpathd1.Dns", "SetConnection", connection="wan")
    assert len(bus.asked) == 2


async def test_only_the_newest_peers_uids_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polkit, "KNOWN_UIDS", 2)
    bus = FakeBus(0, allowed)
    authorizer = Authorizer(cast(MessageBus, bus))
    for sender in (":1.1", ":1.2", ":1.3", ":1.2", ":1.1"):
        bus.deliver(call_message(sender=sender))
        await authorizer.authorize("org.netpathd1.Dns", "SetConnection", connection="wan")
    assert [m.body[0] for m in bus.asked] == [":1.1", ":1.2", ":1.3", ":1.1"]
