"""Flow control on the daemon's bus connection, so that no caller can make it fall over.

Reads are open to every local user, so each defence here answers one way a flood of
allowed calls used to take netpathd down (issue 8 item 1):

* **Writes wait for the socket to drain.** dbus-fast's ``_MessageWriter.write_callback``
  (``dbus_fast/aio/message_bus.py``, checked against dbus-fast 5.2.0) catches every
  exception of ``sock.send()``, including the EAGAIN of a full send buffer, and finalizes
  the bus as if the connection were lost. The bug is open upstream as python-dbus-next
  #153 (fix proposed in its pull request #154, unmerged), which dbus-fast inherits. The
  writer already resumes a partial write when the socket becomes writable, so its socket
  is wrapped: a send that would block reports zero bytes written and the writer waits.
  `install_draining_writes` checks at start that the internals it relies on are still
  there and refuses to run otherwise.
* **Bounded work per client.** At most `MAX_PENDING_CALLS` calls per sender may be
  between arrival and the moment their reply is written; more are refused at once with
  LimitsExceeded, the way the system bus refuses a client's 129th pending reply (calls
  flagged NO_REPLY_EXPECTED are dropped instead: their caller asked for no answer).
* **Coalesced signals.** While the write queue is backed up, PropertiesChanged of one
  interface merge into one signal and other signals wait in a bounded queue (the oldest
  are dropped and counted in the log), so bursts cannot grow memory without bound.
* **A call's signals ride with its reply.** Signals sent while a method call is served
  (its PropertiesChanged) wait for that call's reply and go out before it in the same
  write: the bus daemon is woken once instead of once per message, which was about
  30 µs of every ``AddEndpointRuntime`` (issue 13).  Any other message sends them
  first, and a handler that goes on awaiting sends them two turns of the loop later,
  so no signal is reordered or held for long.
* **Nothing is written once the connection is gone.** dbus-fast 5.2.0 still writes a
  message sent after it finalized the bus to the closed socket's fd number: EBADF, or, once
  that number belongs to the next socket the process opened, a writer on someone else's fd
  that spins, and a call whose reply never comes.  Such a send or call fails at once with
  `NotConnected` (the daemon is shutting down then: app.py).  The send whose own write
  meets the dead peer fails with that write's error, not with the EBADF of dbus-fast
  registering the socket it has just closed.
* **Bounded error text.** dbus-fast echoes the object path, interface and property names
  of a failed ``Properties`` call into its error, which lets the caller pick the reply
  size; those errors are answered here with the names cut short.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from dbus_fast import ErrorType, Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.aio.message_bus import _MessageWriter
from dbus_fast.service import ServiceInterface

from netpathd.bus.caller import current_call, watch_calls
from netpathd.errors import Failed, LimitsExceeded

log = logging.getLogger(__name__)

CHECKED_DBUS_FAST = "5.2.0"  # the version whose writer internals were read
MAX_PENDING_CALLS = 64  # per sender; half the system bus's 128, far above any real client
SIGNAL_BACKLOG = 64  # queued writes above which signals are held back
MAX_HELD_SIGNALS = 256  # held signals other than PropertiesChanged
MAX_ECHOED_NAME = 64  # characters of a caller's name repeated in an error

PROPERTIES = "org.freedesktop.DBus.Properties"
PROPERTY_SIGNATURES = {"Get": "ss", "Set": "ssv", "GetAll": "s"}
STANDARD_INTERFACES = frozenset(
    {
        PROPERTIES,
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.ObjectManager",
    }
)


class NotConnected(ConnectionError):
    """The bus connection is gone: nothing was sent."""

    def __init__(self) -> None:
        super().__init__("not connected to the bus any more")


class _DrainingSocket:
    """The writer's view of the bus socket: a full send buffer is 0 bytes sent, not an error."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes | memoryview) -> int:
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0  # the writer keeps its offset and waits until the socket is writable


def install_draining_writes(bus: MessageBus) -> None:
    """Wrap the writer's socket of a connected ``bus``; fail loudly if dbus-fast changed."""
    writer: Any = getattr(bus, "_writer", None)
    names = _MessageWriter.write_callback.__code__.co_names
    usable = (
        isinstance(writer, _MessageWriter)
        and isinstance(getattr(writer, "sock", None), socket.socket)
        and isinstance(getattr(writer, "messages", None), deque)
        and hasattr(writer, "buf")
        and not writer.negotiate_unix_fd  # fd passing would use sendmsg, not wrapped here
        and {"sock", "send"} <= set(names)
        and callable(getattr(writer, "_write_without_remove_writer", None))  # _send_together
        and callable(getattr(writer, "schedule_write", None))
        and isinstance(getattr(writer, "fd", None), int)
    )
    if not usable:
        raise Failed(
            "dbus-fast's message writer is not the one netpathd/bus/flow_control.py was "
            f"checked against (dbus-fast {CHECKED_DBUS_FAST}); refusing to run without "
            "flow control (python-dbus-next #153)"
        )
    writer.sock = _DrainingSocket(writer.sock)
    writer.schedule_write = partial(_schedule_write_unless_gone, bus, writer.schedule_write)


def _schedule_write_unless_gone(
    bus: MessageBus,
    schedule_write: Callable[[Message | None, asyncio.Future[None] | None], None],
    msg: Message | None = None,
    future: asyncio.Future[None] | None = None,
) -> None:
    """dbus-fast's ``schedule_write``, except when the write it tries at once meets the dead
    peer: that write finalizes the bus, closing the socket, and ``schedule_write`` then
    registers the closed fd with the loop, so EBADF came out of ``send()``.  The message's
    future already holds the write's own error (EPIPE)."""
    try:
        schedule_write(msg, future)
    except OSError:
        if not bus._disconnected:
            raise
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # said once, by wait_for_disconnect: no "never retrieved"


def cut(name: str) -> str:
    return name if len(name) <= MAX_ECHOED_NAME else name[:MAX_ECHOED_NAME] + "..."


def merge_changes(older: Message, newer: Message) -> Message:
    """One PropertiesChanged that leaves a client where ``older`` then ``newer`` would."""
    interface, changed, invalidated = older.body
    _, new_changed, new_invalidated = newer.body
    dropped = set(new_invalidated)
    merged = {name: value for name, value in changed.items() if name not in dropped}
    merged.update(new_changed)
    still_invalid = [name for name in invalidated if name not in new_changed]
    still_invalid += [name for name in new_invalidated if name not in still_invalid]
    return Message.new_signal(
        newer.path or "/",
        PROPERTIES,
        "PropertiesChanged",
        "sa{sv}as",
        [interface, merged, still_invalid],
    )


class FlowControlledBus(MessageBus):
    """A `MessageBus` that waits for its socket, bounds each client and coalesces signals."""

    def __init__(self, bus_address: str | None = None, **kwargs: Any) -> None:
        super().__init__(bus_address, **kwargs)
        self._pending: dict[str, set[int]] = {}
        self._held_changes: dict[tuple[str, str], Message] = {}
        self._held_signals: deque[Message] = deque()
        self._dropped_signals = 0
        self._last_write: asyncio.Future[None] | None = None
        self._flush_armed = False
        self._corked: list[Message] = []  # signals waiting for the reply to _corked_for
        self._corked_for: tuple[str, int] = ("", 0)  # (sender, serial) of that call
        self.add_message_handler(self._admit)
        self.add_message_handler(self._refuse_unknown_names)
        watch_calls(self)

    async def connect(self) -> MessageBus:
        await super().connect()
        install_draining_writes(self)
        return self

    def _emit_interface_added(self, path: str, interface: ServiceInterface) -> None:
        """No ``ObjectManager.InterfacesAdded`` on export: nobody can be listening yet.

        netpathd exports its one object once, before it requests a name (bus/service.py),
        so no client can have subscribed to it; dbus-fast would still read every property
        for that signal, which made the MPTCP getters read the kernel and start the
        TCP->MPTCP probe before READY=1.  ``GetManagedObjects`` still answers.
        """

    def _call(
        self, msg: Message, callback: Callable[[Message | None, Exception | None], None] | None
    ) -> None:
        if self._disconnected:  # dbus-fast would wait for the reply for ever
            if callback is not None:
                callback(None, NotConnected())
            return
        super()._call(msg, callback)

    def send(self, msg: Message) -> asyncio.Future[None]:  # type: ignore[override]  # as aio's
        if self._disconnected:
            gone: asyncio.Future[None] = self._loop.create_future()
            gone.set_exception(NotConnected())
            gone.exception()  # a reply or signal nobody awaits: no "never retrieved" at exit
            return gone
        if msg.message_type is MessageType.SIGNAL:
            if self._write_backlog() >= SIGNAL_BACKLOG:
                return self._hold(msg)
            if (call := self._call_awaiting_reply()) is not None:
                return self._cork(msg, call)
        future: asyncio.Future[None]
        if not self._corked:
            future = super().send(msg)
        elif msg.reply_serial and (msg.destination, msg.reply_serial) == self._corked_for:
            future = self._send_together([*self._corked, msg])
            self._corked.clear()
        else:
            self._uncork()
            future = super().send(msg)
        self._last_write = future
        caller = msg.destination or ""
        pending = self._pending.get(caller)
        if pending is not None and msg.reply_serial in pending:
            future.add_done_callback(partial(self._release, caller, msg.reply_serial))
        return future

    # -- bounded calls per client --------------------------------------------------------

    def _admit(self, msg: Message) -> Message | bool | None:
        if msg.message_type is not MessageType.METHOD_CALL or not msg.sender:
            return None
        expects_reply = not msg.flags & MessageFlag.NO_REPLY_EXPECTED
        pending = self._pending.get(msg.sender)
        if pending is None or len(pending) < MAX_PENDING_CALLS:
            if expects_reply:
                self._pending.setdefault(msg.sender, set()).add(msg.serial)
            return None
        if not expects_reply:
            return True  # refused, and the caller asked for no answer
        return Message.new_error(
            msg,
            LimitsExceeded.dbus_name,
            f"{MAX_PENDING_CALLS} calls from {msg.sender} are still waiting for their "
            "replies; wait for them before sending more",
        )

    def _release(self, sender: str, serial: int, written: asyncio.Future[None]) -> None:
        if not written.cancelled():
            written.exception()  # a lost connection is reported by wait_for_disconnect
        pending = self._pending.get(sender)
        if pending is not None:
            pending.discard(serial)
            if not pending:
                del self._pending[sender]

    # -- a call's signals with its reply ---------------------------------------------------

    def _call_awaiting_reply(self) -> tuple[str, int] | None:
        """(sender, serial) of the call being served here, while its reply is still due."""
        call = current_call()
        if call is None or not call.sender:
            return None
        if call.serial not in self._pending.get(call.sender, ()):
            return None  # answered already, or the caller wants no reply
        return call.sender, call.serial

    def _cork(self, msg: Message, call: tuple[str, int]) -> asyncio.Future[None]:
        if self._corked and self._corked_for != call:
            self._uncork()
        if not self._corked:
            self._corked_for = call
            # Two hops: the reply's own callback, queued when the handler returns, runs
            # between them; a handler still awaiting then lets the signals go alone.
            self._loop.call_soon(self._loop.call_soon, self._uncork)
        self._corked.append(msg)
        done: asyncio.Future[None] = self._loop.create_future()
        done.set_result(None)
        return done

    def _uncork(self) -> None:
        if self._corked and self.connected:
            self._last_write = self._send_together(self._corked)
        self._corked.clear()

    def _send_together(self, messages: list[Message]) -> asyncio.Future[None]:
        """``messages`` in order, in one write; what aio's ``send`` does for one."""
        writer: Any = self._writer
        data = bytearray()
        for message in messages:
            if not message.serial:
                message.serial = self.next_serial()
            data += message._marshall(False)
        future: asyncio.Future[None] = self._loop.create_future()
        idle = not writer.messages
        writer.messages.append((data, None, future))
        if self.unique_name:  # connected: as schedule_write, write now when nothing waits
            if idle:
                writer._write_without_remove_writer()
            if self._disconnected:  # that write met the dead peer (_schedule_write_unless_gone)
                if future.done() and not future.cancelled():
                    future.exception()
                return future
            if writer.buf is not None or writer.messages:
                self._loop.add_writer(writer.fd, writer.write_callback)
        return future

    # -- coalesced signals ---------------------------------------------------------------

    def _write_backlog(self) -> int:
        writer: Any = self._writer
        return len(writer.messages) + (writer.buf is not None)

    def _hold(self, msg: Message) -> asyncio.Future[None]:
        if msg.member == "PropertiesChanged" and msg.interface == PROPERTIES:
            key = (msg.path or "/", str(msg.body[0]))
            older = self._held_changes.get(key)
            self._held_changes[key] = msg if older is None else merge_changes(older, msg)
        else:
            if len(self._held_signals) >= MAX_HELD_SIGNALS:
                self._held_signals.popleft()
                self._dropped_signals += 1
            self._held_signals.append(msg)
        if not self._flush_armed and self._last_write is not None:
            self._flush_armed = True
            self._last_write.add_done_callback(self._flush)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _flush(self, written: asyncio.Future[None]) -> None:
        """Everything queued before the first held signal is written: send what was held."""
        self._flush_armed = False
        if not written.cancelled():
            written.exception()
        held = [*self._held_signals, *self._held_changes.values()]
        self._held_signals.clear()
        self._held_changes.clear()
        if self._dropped_signals:
            log.warning(
                "the bus was not reading fast enough: dropped %d signals", self._dropped_signals
            )
            self._dropped_signals = 0
        if not self.connected:
            return
        for msg in held:
            self._last_write = super().send(msg)

    # -- bounded error text --------------------------------------------------------------

    def _refuse_unknown_names(self, msg: Message) -> Message | None:
        """Answer a failing Properties call before dbus-fast echoes the caller's names."""
        if (
            msg.message_type is not MessageType.METHOD_CALL
            or msg.interface != PROPERTIES
            or PROPERTY_SIGNATURES.get(msg.member or "") != msg.signature
            or not msg.body[0]
        ):
            return None
        if (exported := self._path_exports.get(msg.path or "")) is None:
            return Message.new_error(
                msg, ErrorType.UNKNOWN_OBJECT.value, f'no object at "{cut(msg.path or "")}"'
            )
        interface_name: str = msg.body[0]
        interface = exported.get(interface_name)
        if interface is None and interface_name not in STANDARD_INTERFACES:
            return Message.new_error(
                msg,
                ErrorType.UNKNOWN_INTERFACE.value,
                f'no interface "{cut(interface_name)}" at {msg.path}',
            )
        if msg.member == "GetAll":
            return None
        property_name: str = msg.body[1]
        if interface is not None and any(
            prop.name == property_name and not prop.disabled
            for prop in ServiceInterface._get_properties(interface)
        ):
            return None
        return Message.new_error(
            msg,
            ErrorType.UNKNOWN_PROPERTY.value,
            f'interface "{interface_name}" has no property "{cut(property_name)}"',
        )
