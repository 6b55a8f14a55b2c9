"""Composition root: builds every part, wires them and runs the loop.

Order of start-up (what clients may rely on): load configuration, connect to
the bus, export every object, request ``org.netpathd1`` last, then READY=1.

Only the configuration's modules load at import, so that ``--help`` and ``--version``
answer in a few milliseconds; argparse loads for any command line but the usual ones
(`command_line.usual_options`), asyncio (27 ms) and every adapter when the daemon is built.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from netpathd import BUS_NAME, __version__, keep_openssl_out, service_manager
from netpathd.command_line import Options, parse_options
from netpathd.errors import ConfigError, NetpathdError
from netpathd.manager import Commit, DaemonState, Manager
from netpathd.model.settings import Settings

if TYPE_CHECKING:
    import asyncio

    from dbus_fast.aio import MessageBus

    from netpathd.model.links import NetState
    from netpathd.mptcp_apps import MptcpApps
    from netpathd.tcp_to_mptcp import TcpToMptcp

log = logging.getLogger("netpathd")

EX_USAGE, EX_UNAVAILABLE = 64, 69
# Above the longest wait a part has a reason for (dnsmasq's 5 s SIGTERM grace, then
# SIGKILL), far below systemd's TimeoutStopSec (90 s) after which it would kill us anyway.
SHUTDOWN_DEADLINE = 10.0

Step = tuple[str, Callable[[], Awaitable[None]]]


def ended(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is done; its error, if any, counts as seen (what ended dbus-fast's
    reader, an EOFError, says nothing the log line does not)."""
    if task.done() and not task.cancelled():
        task.exception()
    return task.done()


async def finish_within(deadline: float, steps: Sequence[Step]) -> str | None:
    """Run the ``(name, close)`` steps in order; the name of the one still running at
    ``deadline``, or None when all ended.

    They run in a task of their own that is left alone at the deadline: a bound that
    cancels (``asyncio.timeout``) holds only if the awaited code lets the cancellation
    through. A step that raises is logged and the next one runs.
    """
    import asyncio  # noqa: PLC0415 - see the module docstring

    current = ""

    async def run_steps() -> None:
        nonlocal current
        for name, close in steps:
            current = name
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", name)

    task = asyncio.get_running_loop().create_task(run_steps())
    done, _ = await asyncio.wait({task}, timeout=deadline)
    return None if done else current


class Daemon:
    """Owns every part for one run: built in `start()`, torn down in `run()`'s end."""

    def __init__(self, options: Options) -> None:
        # Heavy adapters are imported here so that `netpathd --help` stays fast.
        import asyncio  # noqa: PLC0415

        from netpathd.dns_manager import DnsManager  # noqa: PLC0415
        from netpathd.dns_ra import RaDns  # noqa: PLC0415
        from netpathd.files.resolv_conf import RcManager  # noqa: PLC0415
        from netpathd.kernel.nd_useropt import NdUserOptWatcher  # noqa: PLC0415
        from netpathd.kernel.rtnl import RtnlWatcher  # noqa: PLC0415
        from netpathd.mptcp_manager import MptcpManager  # noqa: PLC0415

        self.options = options
        self.manager = Manager(options.config_dir, options.log_level, service_manager.set_log_level)
        self.manager.load_initial()
        self.dns = DnsManager(
            options.config_dir,
            options.state_dir,
            options.resolv_conf,
            RcManager(self.manager.settings.rc_manager),
        )
        if self.manager.settings.dns != "default":
            # Until the bus is there for its back-end, compute but write nothing: the resolver
            # file must not flip to the ordered servers and back to the local resolver.
            from netpathd.dns_backends.resolv_file import NoBackend  # noqa: PLC0415

            self.dns.hold(NoBackend())
        self.ra = RaDns(self.dns, self.manager.settings.ra)
        self.ra_watcher = NdUserOptWatcher(self.ra.on_options)
        self.manager.add_reloader(self._prepare_ra_reload)
        self.watcher = RtnlWatcher(self._on_network_change)
        self.manager.add_reloader(self._prepare_dns_reload)
        self.mptcp = MptcpManager(options.config_dir, options.state_dir, options.runtime_dir)
        self.manager.add_reloader(lambda _settings: self.mptcp.prepare_reload())
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._bus: MessageBus | None = None
        self.tcp: TcpToMptcp | None = None

    async def start(self) -> MessageBus:
        """Load, read the kernel, connect, export, own the name: then READY=1."""
        from netpathd.bus.dns import DnsInterface  # noqa: PLC0415
        from netpathd.bus.manager import ManagerInterface  # noqa: PLC0415
        from netpathd.bus.mptcp import MptcpInterface  # noqa: PLC0415
        from netpathd.bus.polkit import Authorizer  # noqa: PLC0415
        from netpathd.bus.service import connect, new_bus, publish  # noqa: PLC0415
        from netpathd.bus.systemd_client import SystemdClient  # noqa: PLC0415
        from netpathd.tcp_to_mptcp import TcpToMptcp  # noqa: PLC0415

        new_bus(self.options.bus_address)  # a malformed address must stop us before any change
        self.dns.remove_stale_temporaries()
        try:
            self.dns.load()
        except ConfigError as error:
            log.error("DNS configuration not loaded: %s", error.message)
        service_manager.notify("STATUS=Reading links, addresses and routes")
        self.ra_watcher.start()  # RAs name links by ifindex: subscribed before the dump
        await self.watcher.start()
        self._on_network_change(self.watcher.state)
        service_manager.notify("STATUS=Applying the MPTCP configuration")
        await self.mptcp.start()

        service_manager.notify("STATUS=Connecting to the bus")
        bus = await connect(self.options.bus_address)
        polkit = Authorizer(bus)  # sees every call from now on: before anything is exported
        self._bus = bus
        await self._select_dns_backend()
        systemd = SystemdClient(bus)
        service_manager.notify("STATUS=Applying the TCP->MPTCP scope")
        self.tcp = TcpToMptcp(self.options.state_dir, self.options.bpf_pin, systemd.control_group)
        self.mptcp.guard_enabled(self.tcp)
        await self.tcp.start()
        self.manager.add_reloader(lambda _settings: self.tcp_reload)

        def apps() -> MptcpApps:
            from netpathd.mptcp_apps import MptcpApps  # noqa: PLC0415 - the first app call

            return MptcpApps(systemd, self.options.systemd_dir)

        try:
            await publish(
                bus,
                [
                    ManagerInterface(self.manager, polkit),
                    DnsInterface(self.dns, polkit),
                    MptcpInterface(self.mptcp, polkit, apps, self.tcp),
                ],
            )
        except NetpathdError:
            bus.disconnect()
            self.ra_watcher.close()
            self.tcp.close()
            await self.watcher.close()
            await self.mptcp.close()
            raise
        return bus

    async def tcp_reload(self) -> None:
        if self.tcp is not None:
            await self.tcp.reload()

    async def run(self) -> int:
        import asyncio  # noqa: PLC0415 - see the module docstring

        loop = asyncio.get_running_loop()
        bus = await self.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        self.manager.set_state(DaemonState.RUNNING)
        gc.enable()  # off while starting (main): from here on memory is reclaimed as usual
        service_manager.notify("READY=1", f"STATUS=Serving {BUS_NAME}")
        log.info(
            "netpathd %s ready on %s", __version__, self.options.bus_address or "the system bus"
        )

        if (interval := service_manager.watchdog_interval()) is not None:
            self._spawn(service_manager.run_watchdog(interval))
        self._spawn(self.mptcp.run_events())
        self._spawn(self.mptcp.run_network())
        disconnected = loop.create_task(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        stopped = loop.create_task(self._stop.wait())
        await asyncio.wait({disconnected, stopped}, return_when=asyncio.FIRST_COMPLETED)

        if lost := ended(disconnected):
            log.error("lost the connection to the bus, exiting")
        self.manager.set_state(DaemonState.STOPPING)
        service_manager.notify("STOPPING=1", "STATUS=Shutting down")
        stopped.cancel()
        self.ra_watcher.close()
        self.ra.close()
        if self.tcp is not None:
            self.tcp.close()  # unpinned, the kernel detaches the program: new sockets are TCP
        steps: list[Step] = [
            ("the daemon's tasks", self._stop_tasks),
            ("the rtnetlink watcher", self.watcher.close),
            ("the MPTCP manager", self.mptcp.close),
            ("the DNS back-end", self.dns.close),
        ]
        if (stuck := await finish_within(SHUTDOWN_DEADLINE, steps)) is not None:
            log.error(
                "shutdown did not finish within %g s: still waiting for %s; exiting",
                SHUTDOWN_DEADLINE,
                stuck,
            )
            # asyncio.run would now wait for the stuck task to end after cancelling it.
            logging.shutdown()
            os._exit(1)
        if ended(disconnected):
            if not lost:
                log.error("lost the connection to the bus while stopping")
            return 1
        bus.disconnect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(disconnected, 1.0)
        log.info("stopped")
        return 0

    async def _stop_tasks(self) -> None:
        """The daemon's own tasks end before the parts they use close."""
        from netpathd.tasks import cancel_until_done  # noqa: PLC0415 - see the module docstring

        await cancel_until_done(self._tasks)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        import asyncio  # noqa: PLC0415 - see the module docstring

        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _request_reload(self) -> None:
        async def reload() -> None:
            service_manager.notify("RELOADING=1")
            try:
                await self.manager.reload()
            except ConfigError:
                pass  # the manager said why; the last good configuration stays
            except NetpathdError as error:
                log.error("reload failed: %s", error.message)
            except Exception:
                log.exception("reload failed")
            finally:
                # systemd waits for READY=1 after RELOADING=1: `systemctl reload` would hang
                service_manager.notify("READY=1")

        self._spawn(reload())

    def _prepare_dns_reload(self, settings: Settings) -> Commit:
        from netpathd.files.resolv_conf import RcManager  # noqa: PLC0415

        adopt = self.dns.prepare_reload(RcManager(settings.rc_manager))

        async def commit() -> None:
            adopt()
            await self._select_dns_backend()

        return commit

    def _prepare_ra_reload(self, settings: Settings) -> Commit:
        async def commit() -> None:
            self.ra.set_policy(settings.ra)

        return commit

    async def _select_dns_backend(self) -> None:
        """The back-end of `[main] dns`; a changed mode replaces the old one (which cleans up)."""
        from netpathd.model.dns_plan import DnsMode  # noqa: PLC0415

        mode = DnsMode(self.manager.settings.dns)
        if mode is self.dns.mode:
            return
        from netpathd.dns_backends import make_backend  # noqa: PLC0415
        from netpathd.dns_backends.base import BackendContext  # noqa: PLC0415

        context = BackendContext(
            bus=self._bus,
            bus_address=self.options.bus_address,
            resolver_file=self.dns.resolver_file,
            config_dir=self.options.config_dir,
            on_state=self.dns.backend_state_changed,
        )
        await self.dns.set_backend(make_backend(mode, context))

    def _on_network_change(self, state: NetState) -> None:
        """One coalesced snapshot feeds both halves; MPTCP acts on it in its own task."""
        try:
            self.dns.update_network(state)
        except NetpathdError as error:
            log.error("DNS update failed: %s", error.message)
        self.ra.network_changed(state)
        self.mptcp.network_changed(state)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    keep_openssl_out()
    service_manager.setup_logging(options.log_level or "info")
    # Start-up allocates tens of thousands of objects (module code, classes, dataclass
    # methods) and frees almost none: the cyclic collector's passes over them were about
    # 5 ms of every start. Daemon.run turns it on again before READY=1.
    gc.disable()
    try:
        return _run(options)
    finally:
        gc.enable()


def _run(options: Options) -> int:
    import asyncio  # noqa: PLC0415 - see the module docstring

    from netpathd.bus.service import BadBusAddress, BusUnavailable  # noqa: PLC0415

    try:
        return asyncio.run(Daemon(options).run())
    except NetpathdError as error:
        log.error("%s", error.message)
        # sysexits.h, which systemd names in `systemctl status` (64/USAGE, 69/UNAVAILABLE)
        if isinstance(error, BadBusAddress):
            return EX_USAGE
        return EX_UNAVAILABLE if isinstance(error, BusUnavailable) else 1


if __name__ == "__main__":
    raise SystemExit(main())
