"""Who is calling: the sender and flags of the D-Bus message a handler is serving.

dbus-fast (checked against 5.2.0) hands a ``ServiceInterface`` method or property
setter only its arguments, never the message, so authorization could not see the
caller's unique name or its ALLOW_INTERACTIVE_AUTHORIZATION flag.  This is the one
place that reaches past that API, and it relies on two things that version does:

- ``BaseMessageBus._process_message()`` runs the user message handlers (the public
  ``add_message_handler()``) for every incoming message *before* it looks up and
  calls the exported method or property setter, in the same synchronous call;
- a coroutine handler is started with ``asyncio.ensure_future()`` inside that call,
  so the new task copies the context, and with it the message, at that moment.

So a handler that records each method call in a context variable makes the message
visible to the handler that serves it, including after its awaits.  If a later
dbus-fast dispatches differently, `current_caller()` fails loudly (no message, or
another one: tests/integration/test_bus_caller.py) rather than authorizing
the wrong caller.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

from netpathd.errors import Failed

_current_call: ContextVar[Message | None] = ContextVar("netpathd_current_call", default=None)


@dataclass(frozen=True, slots=True)
class Caller:
    """The peer behind one method call: its unique bus name and what it allows."""

    sender: str
    interactive: bool  # the caller set ALLOW_INTERACTIVE_AUTHORIZATION

    @classmethod
    def of(cls, message: Message) -> Caller:
        if not message.sender:
            raise Failed(f"{message.member}: the call carries no sender")
        interactive = bool(message.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
        return cls(message.sender, interactive)


def _remember(message: Message) -> None:
    if message.message_type is MessageType.METHOD_CALL:
        _current_call.set(message)
    # returning None leaves the message to dbus-fast's own dispatch


def watch_calls(bus: MessageBus) -> None:
    """Record every incoming method call for `current_caller()`; call before exporting.

    Asked twice (the flow control and the authorizer both need it), the call is
    recorded twice: the same message in the same variable.
    """
    bus.add_message_handler(_remember)


def current_call() -> Message | None:
    """The method call being served here, if any: in its handler, the last one recorded.

    Outside a handler's task this may be a call already answered (the bus reader's own
    context keeps the last one): check it against what still waits for a reply.
    """
    return _current_call.get()


def current_caller() -> Caller:
    """The caller of the method or property setter running now (see the module doc)."""
    message = _current_call.get()
    if message is None:
        raise Failed("no D-Bus call is being served here")
    return Caller.of(message)
