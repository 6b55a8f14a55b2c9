"""dns=dnsmasq: netpathd's own dnsmasq on 127.0.0.1, configured over D-Bus.

As NetworkManager runs it (`src/core/dns/nm-dns-dnsmasq.c`): a private instance with the
same command line (`--enable-dbus` under our own name), the servers pushed with
`SetServersEx` after every change and whenever dnsmasq signals `Up` (a restarted dnsmasq has
no servers and answers REFUSED), and restarted with a growing delay when it dies.
dnsmasq does not apply search domains, so the resolver file keeps the `search` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from dbus_fast import Message, MessageType

from netpathd.dns_backends.base import (
    BackendContext,
    BackendUnavailable,
    PushingBackend,
    bus_call,
    bus_daemon_match,
    stop_task,
)
from netpathd.model.dns_plan import DEFAULT_DOMAIN, DnsMode, DnsPlan

log = logging.getLogger(__name__)

BUS_NAME = "org.netpathd1.dnsmasq"
OBJECT_PATH = "/uk/org/thekelleys/dnsmasq"  # dnsmasq keeps its path whatever the name
CACHE_SIZE = 400  # NetworkManager's
CALL_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0)  # also how often a missing binary is looked for
STABLE_AFTER = 30.0  # a dnsmasq that ran this long starts the delays from the beginning
SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"
# What dnsmasq needs of netpathd.service beyond its sandbox (packaging/, README "Split DNS").
UNIT_DROP_IN = "/usr/lib/netpathd/netpathd.service.d/dnsmasq.conf"


def find_dnsmasq() -> str | None:
    """dnsmasq on PATH (the unit's PATH, like systemd's default, includes /usr/sbin)."""
    return shutil.which("dnsmasq")


def dnsmasq_argv(binary: str, conf_dir: str | None) -> list[str]:
    """NetworkManager's command line, with netpathd's bus name and no pid file."""
    argv = [
        binary,
        "--no-resolv",
        "--keep-in-foreground",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file=",
        "--listen-address=127.0.0.1",
        f"--cache-size={CACHE_SIZE}",
        "--clear-on-reload",
        "--conf-file=/dev/null",
        f"--enable-dbus={BUS_NAME}",
    ]
    if conf_dir is not None:
        argv.append(f"--conf-dir={conf_dir}")
    return argv


def servers_ex(plan: DnsPlan) -> list[list[str]]:
    """The `SetServersEx` argument: per server `[server@ifname, domain...]`.

    Servers of the default route get an entry without domains (dnsmasq's "everything else");
    servers that also answer a domain get a second entry for it, so neither role hides the
    other.  Names come from validated settings only (model.dns_settings), never raw input.
    """
    default: list[list[str]] = []
    by_server: dict[str, list[str]] = {}
    for route in plan.routes:
        for server in route.servers:
            spec = f"{server}@{route.interface_name}"
            if route.domain == DEFAULT_DOMAIN:
                default.append([spec])
            else:
                by_server.setdefault(spec, [spec]).append(route.domain)
    return [*default, *by_server.values()]


class DnsmasqBackend(PushingBackend):
    mode = DnsMode.DNSMASQ

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.starts = 0  # how many dnsmasq processes were started (Explain, tests)
        self._match = f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',member='Up'"
        self._subscribed = False
        # What the running dnsmasq last accepted.  SetServersEx replaces the whole list (there
        # is no call for one server), so a change that routes nothing differently (a priority
        # that decides no contest) sends nothing; a new or restarted dnsmasq gets it again.
        self._pushed: list[list[str]] | None = None
        self._instance = 0  # counts dnsmasq starts and Up signals: a reply to an older is stale

    def apply(self, plan: DnsPlan) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        super().apply(plan)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def push(self, plan: DnsPlan) -> None:
        bus = self._context.bus
        if bus is None or self._process is None:
            raise BackendUnavailable("starting: dnsmasq is not running yet")
        servers = servers_ex(plan)
        if servers == self._pushed:
            return
        instance = self._instance
        message = Message(
            destination=BUS_NAME,
            path=OBJECT_PATH,
            interface=BUS_NAME,
            member="SetServersEx",
            signature="aas",
            body=[servers],
        )
        try:
            reply = await bus_call(bus, message, CALL_TIMEOUT)
        except TimeoutError:
            raise BackendUnavailable(
                f"unavailable: dnsmasq did not answer within {CALL_TIMEOUT}s"
            ) from None
        if reply is not None and reply.error_name == SERVICE_UNKNOWN:
            raise BackendUnavailable(f"starting: waiting for dnsmasq to own {BUS_NAME}")
        if reply is None or reply.message_type is MessageType.ERROR:
            detail = reply.body[0] if reply is not None and reply.body else ""
            name = reply.error_name if reply is not None else "no reply"
            raise BackendUnavailable(f"unavailable: SetServersEx refused: {name} {detail}".rstrip())
        if instance == self._instance:
            self._pushed = servers

    async def close(self) -> None:
        await self.stop_pushing()
        if self._supervisor is not None:
            await stop_task(self._supervisor)
            self._supervisor = None
        await self._terminate()
        bus = self._context.bus
        if bus is not None and self._subscribed:
            bus.remove_message_handler(self._on_message)
            with contextlib.suppress(Exception):
                await bus_daemon_match(bus, "RemoveMatch", self._match, CALL_TIMEOUT)

    async def _supervise(self) -> None:
        await self._subscribe()
        await self._stop_stale()
        failures = 0
        while True:
            started = time.monotonic()
            binary = find_dnsmasq()
            if binary is None:
                self.set_state("unavailable: no dnsmasq binary (install dnsmasq-base)")
            elif (status := await self._run_once(binary)) is not None:
                self.set_state(f"restarting: dnsmasq exited ({_describe(status)})")
            if time.monotonic() - started >= STABLE_AFTER:
                failures = 0
            await asyncio.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])
            failures += 1

    async def _run_once(self, binary: str) -> int | None:
        """Start dnsmasq and wait for its exit status; None when it could not be started."""
        env = dict(os.environ)
        if self._context.bus_address is not None:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self._context.bus_address
        conf_dir = self._context.config_dir / "dnsmasq.d"
        argv = dnsmasq_argv(binary, str(conf_dir) if conf_dir.is_dir() else None)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            self.set_state(f"unavailable: cannot start {binary}: {error.strerror}")
            return None
        self.starts += 1
        self._forget_pushed()
        log.info("started dnsmasq (pid %d): %s", self._process.pid, " ".join(argv))
        # The first push fails until dnsmasq owns its name; `Up` wakes the pusher again.
        self.wake()
        _, stderr = await self._process.communicate()
        status = self._process.returncode
        self._process = None
        for line in stderr.decode(errors="replace").splitlines():
            if line.strip():  # dnsmasq begins its own lines with "dnsmasq: "
                log.warning("dnsmasq: %s", line.removeprefix("dnsmasq: ").rstrip())
        return status if status is not None else 0

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        except PermissionError as error:
            # dnsmasq dropped to nobody, and signalling another user's process takes CAP_KILL,
            # which the shipped unit grants only with the drop-in.  Raising would end the mode
            # switch half-way (and, in a reload, never send READY=1).
            log.error(
                "cannot stop dnsmasq (pid %d): %s (it runs as another user and netpathd lacks "
                "CAP_KILL; under the shipped unit dns=dnsmasq needs %s)",
                process.pid,
                error.strerror,
                UNIT_DROP_IN,
            )
            return
        log.info("stopped dnsmasq (pid %d)", process.pid)

    async def _stop_stale(self) -> None:
        """Stop a dnsmasq that a killed netpathd left behind.

        Outside a service manager's cgroup kill it still owns the name and 127.0.0.1:53, so
        ours could not bind and the pushes would reach the old one (NetworkManager kills its
        stale instance through a pidfile for the same reason).  Only a process that is
        netpathd's dnsmasq by its command line is stopped.
        """
        bus = self._context.bus
        if bus is None:
            return
        message = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetConnectionUnixProcessID",
            signature="s",
            body=[BUS_NAME],
        )
        try:
            reply = await bus_call(bus, message, CALL_TIMEOUT)
        except (TimeoutError, BackendUnavailable):
            return
        if reply is None or reply.message_type is MessageType.ERROR:
            return  # NameHasNoOwner: nothing was left behind
        pid: int = reply.body[0]
        if not _is_netpathds_dnsmasq(pid):
            log.warning("%s is owned by pid %d, which is not netpathd's dnsmasq", BUS_NAME, pid)
            return
        log.warning("stopping the dnsmasq (pid %d) a previous netpathd left running", pid)
        try:
            await _stop_process(pid)
        except PermissionError:
            log.warning("not allowed to stop the old dnsmasq (pid %d)", pid)

    async def _subscribe(self) -> None:
        bus = self._context.bus
        if bus is None or self._subscribed:
            return
        bus.add_message_handler(self._on_message)
        self._subscribed = True
        try:
            await bus_daemon_match(bus, "AddMatch", self._match, CALL_TIMEOUT)
        except TimeoutError:
            log.warning("could not subscribe to dnsmasq's Up signal: the bus did not answer")
        except BackendUnavailable as error:
            log.warning("could not subscribe to dnsmasq's Up signal: %s", error)

    def _forget_pushed(self) -> None:
        self._pushed = None
        self._instance += 1

    def _on_message(self, message: Message) -> bool | None:
        if (
            message.message_type is MessageType.SIGNAL
            and message.member == "Up"
            and message.path == OBJECT_PATH
            and message.interface == BUS_NAME
        ):
            log.info("dnsmasq is up: pushing the servers")
            self._forget_pushed()
            self.wake()
        return None


def _is_netpathds_dnsmasq(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.path.basename(argv[0]) == b"dnsmasq" and f"--enable-dbus={BUS_NAME}".encode() in argv


async def _stop_process(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns once it has exited (a pidfd)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), STOP_TIMEOUT)
        except TimeoutError:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            await exited
    except ProcessLookupError:
        pass  # it exited between the question and the signal
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def _describe(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"status {status}"
