"""The one small interface every DNS back-end implements, and what they are built with."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dbus_fast import Message

from netpathd.errors import NetpathdError
from netpathd.model.dns_plan import DnsMode, DnsPlan
from netpathd.tasks import cancel_until_done

if TYPE_CHECKING:
    from dbus_fast.aio import MessageBus

    from netpathd.dns_backends.resolv_file import ResolverFileWriter

log = logging.getLogger(__name__)

StateObserver = Callable[[str], None]

RUNNING = "running"
BUS_LOST = "unavailable: lost the connection to the bus"


class DnsBackend(Protocol):
    """Takes plans and applies them; the manager never knows which one runs."""

    mode: DnsMode
    # Whether apply() reads the plan's domain routes and links.  They cost O(connections)
    # per change, so a back-end that only writes the resolver file gets a plan without them.
    routes_domains: bool

    @property
    def state(self) -> str:
        """`running`, or what is wrong (`starting: …`, `unavailable: …`, `restarting: …`)."""

    def apply(self, plan: DnsPlan) -> None:
        """Make `plan` true now, or as soon as the back-end can; a newer plan replaces it."""

    async def close(self) -> None:
        """Stop, and undo what this back-end configured (links, processes)."""


class BackendUnavailable(Exception):
    """The back-end cannot take the plan now; retried when it (re)appears.

    The message is the new BackendState: `starting: …` or `unavailable: …`.
    """


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What the daemon lends a back-end: its bus, the resolver file, where to report state."""

    bus: MessageBus | None  # the daemon's own connection; None before it is connected
    bus_address: str | None  # what a child process (dnsmasq) connects to; None: system bus
    resolver_file: ResolverFileWriter
    config_dir: Path
    on_state: StateObserver


class PushingBackend(ABC):
    """A back-end that pushes plans to another process: one task, the newest plan only.

    `apply()` never blocks the caller; the task pushes the latest plan, and when the back-end
    is missing or refuses, the state says why and the plan waits for `wake()` (the back-end
    appeared or restarted).  The resolver file is switched to the local resolver only after a
    push succeeded, so a failing back-end keeps the last good file.
    """

    mode: DnsMode
    routes_domains = True

    def __init__(self, context: BackendContext) -> None:
        self._context = context
        self._plan: DnsPlan | None = None
        self._pending = asyncio.Event()
        self._state = "starting"
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return self._state

    def apply(self, plan: DnsPlan) -> None:
        self._plan = plan
        self.wake()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        self._pending.set()

    def set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            level = logging.INFO if state == RUNNING else logging.WARNING
            log.log(level, "DNS back-end %s: %s", self.mode.value, state)
            self._context.on_state(state)

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            plan = self._plan
            if plan is None:
                continue
            try:
                await self.push(plan)
            except BackendUnavailable as error:
                self.set_state(str(error))
                continue
            if plan.order.entries:
                try:
                    self._context.resolver_file.write(plan.resolver, self.resolver_link())
                except NetpathdError as error:
                    # The back-end has the plan; the next plan retries the file.
                    self.set_state(f"failed: cannot write the resolver file: {error.message}")
                    continue
            self.set_state(RUNNING)

    @abstractmethod
    async def push(self, plan: DnsPlan) -> None:
        """Hand the plan to the back-end; BackendUnavailable when it cannot take it."""

    def resolver_link(self) -> str | None:
        """Where the resolver file should point with rc-manager=symlink; None: write a file."""
        return None

    async def stop_pushing(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it ends (`netpathd.tasks`: a pusher that swallowed one
    cancellation goes on to wait for the next plan); an error it ended with is logged, not
    raised: the back-end is closing either way, and a raise would skip the rest of the
    daemon's shutdown."""
    await cancel_until_done([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("DNS back-end task %s failed: %r", task.get_name(), error)


async def bus_call(bus: MessageBus, message: Message, within: float) -> Message | None:
    """``bus.call`` answered ``within`` seconds (TimeoutError); a lost bus is `BackendUnavailable`.

    ``asyncio.timeout``, not ``wait_for``, which in 3.11 can swallow the caller's
    cancellation (`stop_task`).  A call in flight when the connection drops fails with what
    ended dbus-fast's reader (EOFError, an OSError), one made later with NotConnected
    (bus/flow_control.py).
    """
    try:
        async with asyncio.timeout(within):
            return await bus.call(message)
    except TimeoutError:
        raise
    except Exception as error:
        if bus.connected:
            raise
        raise BackendUnavailable(BUS_LOST) from error


async def bus_daemon_match(bus: MessageBus, member: str, rule: str, within: float) -> None:
    """`AddMatch` or `RemoveMatch` of `rule`: the bus daemon answers, not the back-end."""
    message = Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member=member,
        signature="s",
        body=[rule],
    )
    await bus_call(bus, message, within)
