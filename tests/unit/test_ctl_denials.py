"""netpathctl's side of authorization: the interactive flag and one-line denials."""

from __future__ import annotations

from typing import cast

import pytest
from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

from netpathd.ctl.client import CallFailed, Client, explain_denial

RAW = (
    'Rejected send message, 1 matched rules; type="method_call", sender=":1.5" (uid=65534 '
    'pid=9 comm="netpathctl") interface="org.netpathd1.Manager" member="Reload"'
)


class RefusingBus:
    """Answers every call with one error, remembering the calls."""

    def __init__(self, name: str, text: str) -> None:
        self.error = (name, text)
        self.calls: list[Message] = []

    async def call(self, message: Message) -> Message:
        self.calls.append(message)
        return Message(
            message_type=MessageType.ERROR,
            reply_serial=1,
            error_name=self.error[0],
            signature="s",
            body=[self.error[1]],
        )


async def refusal(name: str, text: str, interactive: bool = False) -> tuple[CallFailed, Message]:
    bus = RefusingBus(name, text)
    client = Client(cast(MessageBus, bus), interactive=interactive)
    with pytest.raises(CallFailed) as caught:
        await client.call("org.netpathd1.Manager", "Reload")
    return caught.value, bus.calls[0]


async def test_interaction_is_allowed_only_when_asked_for() -> None:
    _, plain = await refusal("org.netpathd1.Error.Failed", "x")
    _, asking = await refusal("org.netpathd1.Error.Failed", "x", interactive=True)
    assert not plain.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION
    assert asking.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION


async def test_the_bus_policys_raw_refusal_becomes_what_is_needed() -> None:
    error, _ = await refusal("org.freedesktop.DBus.Error.AccessDenied", RAW)
    assert error.name == "org.freedesktop.DBus.Error.AccessDenied"  # exit code 4
    assert "Rejected" not in error.text
    assert error.text.startswith("the bus refused org.netpathd1.Manager.Reload: ")


def test_polkit_denials_name_the_action_and_how_to_get_it() -> None:
    denied = explain_denial(
        "org.netpathd1.Error.PermissionDenied",
        "not authorized for org.netpathd1.dns.configure-runtime: polkit refused it",
        "org.netpathd1.Dns.SetConnectionRuntime",
    )
    assert denied == (
        "not authorized for org.netpathd1.dns.configure-runtime: polkit refused it; run as "
        "root, or ask the administrator for a polkit rule granting "
        "org.netpathd1.dns.configure-runtime"
    )
    challenged = explain_denial(
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
        "not authorized for org.netpathd1.reload without authentication: allow it",
        "org.netpathd1.Manager.Reload",
    )
    assert challenged.startswith("not authorized for org.netpathd1.reload without authentication")
    assert "from a terminal" in challenged
    assert challenged.endswith("a polkit rule granting org.netpathd1.reload")
    assert "\n" not in denied + challenged
