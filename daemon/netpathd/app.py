"""Composition root: builds every part, wires them and runs the loop.

Order of start-up (what clients may rely on): load configuration, connect to
the bus, export every object, request ``org.netpathd1`` last, then READY=1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netpathd import BUS_NAME, __version__, service_manager
from netpathd.errors import ConfigError, NetpathdError
from netpathd.manager import DaemonState, Manager
from netpathd.model.settings import LOG_LEVELS

if TYPE_CHECKING:
    from dbus_fast.aio import MessageBus

    from netpathd.model.links import NetState

log = logging.getLogger("netpathd")

BUS_ADDRESS_ENV = "NETPATHD_BUS_ADDRESS"


@dataclass(frozen=True, slots=True)
class Options:
    bus_address: str | None
    config_dir: Path
    state_dir: Path
    resolv_conf: Path
    log_level: str | None
    systemd_dir: Path = Path("/etc/systemd/system")  # where EnableApp writes unit drop-ins


def build_parser() -> argparse.ArgumentParser:
    """Separate from parse_options so that the man page test can read every option."""
    parser = argparse.ArgumentParser(
        prog="netpathd",
        description="Multipath TCP and DNS server ordering daemon (D-Bus name org.netpathd1).",
    )
    parser.add_argument(
        "--bus-address",
        default=os.environ.get(BUS_ADDRESS_ENV) or None,
        help=f"D-Bus address to serve on (default: ${BUS_ADDRESS_ENV}, else the system bus)",
    )
    parser.add_argument("--config-dir", type=Path, default=Path("/etc/netpathd"))
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/netpathd"))
    parser.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"))
    parser.add_argument(
        "--systemd-dir",
        type=Path,
        default=Path("/etc/systemd/system"),
        help="systemd unit directory for the drop-ins of EnableApp (mptcp app enable)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="overrides log-level of netpathd.conf"
    )
    parser.add_argument("--version", action="version", version=f"netpathd {__version__}")
    return parser


def parse_options(argv: list[str]) -> Options:
    args = build_parser().parse_args(argv)
    return Options(
        bus_address=args.bus_address,
        config_dir=args.config_dir,
        state_dir=args.state_dir,
        resolv_conf=args.resolv_conf,
        log_level=args.log_level,
        systemd_dir=args.systemd_dir,
    )


class Daemon:
    """Owns every part for one run: built in `start()`, torn down in `run()`'s end."""

    def __init__(self, options: Options) -> None:
        # Heavy adapters are imported here so that `netpathd --help` stays fast.
        from netpathd.dns_manager import DnsManager  # noqa: PLC0415
        from netpathd.files.resolv_conf import RcManager  # noqa: PLC0415
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
        self.watcher = RtnlWatcher(self._on_network_change)
        self.manager.add_reloader(self._reload_dns)
        self.mptcp = MptcpManager(options.config_dir, options.state_dir)
        self.manager.add_reloader(self.mptcp.reload)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> MessageBus:
        """Load, read the kernel, connect, export, own the name: then READY=1."""
        from netpathd.bus.dns import DnsInterface  # noqa: PLC0415
        from netpathd.bus.manager import ManagerInterface  # noqa: PLC0415
        from netpathd.bus.mptcp import MptcpInterface  # noqa: PLC0415
        from netpathd.bus.service import connect, publish  # noqa: PLC0415
        from netpathd.bus.systemd_client import SystemdClient  # noqa: PLC0415
        from netpathd.mptcp_apps import MptcpApps  # noqa: PLC0415

        try:
            self.dns.load()
        except ConfigError as error:
            log.error("DNS configuration not loaded: %s", error.message)
        service_manager.notify("STATUS=Reading links, addresses and routes")
        await self.watcher.start()
        self._on_network_change(self.watcher.state)
        service_manager.notify("STATUS=Applying the MPTCP configuration")
        await self.mptcp.start()

        service_manager.notify("STATUS=Connecting to the bus")
        bus = await connect(self.options.bus_address)
        try:
            await publish(
                bus,
                [
                    ManagerInterface(self.manager),
                    DnsInterface(self.dns),
                    MptcpInterface(
                        self.mptcp, MptcpApps(SystemdClient(bus), self.options.systemd_dir)
                    ),
                ],
            )
        except NetpathdError:
            bus.disconnect()
            await self.watcher.close()
            await self.mptcp.close()
            raise
        return bus

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        bus = await self.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        self.manager.set_state(DaemonState.RUNNING)
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

        self.manager.set_state(DaemonState.STOPPING)
        service_manager.notify("STOPPING=1", "STATUS=Shutting down")
        stopped.cancel()
        for task in self._tasks:
            task.cancel()
        await self.watcher.close()
        await self.mptcp.close()
        if disconnected.done():
            log.error("lost the connection to the bus, exiting")
            return 1
        bus.disconnect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(disconnected, 1.0)
        log.info("stopped")
        return 0

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _request_reload(self) -> None:
        async def reload() -> None:
            service_manager.notify("RELOADING=1")
            with contextlib.suppress(ConfigError):
                await self.manager.reload()
            service_manager.notify("READY=1")

        self._spawn(reload())

    async def _reload_dns(self) -> None:
        from netpathd.files.resolv_conf import RcManager  # noqa: PLC0415

        self.dns.rc_manager = RcManager(self.manager.settings.rc_manager)
        self.dns.load()

    def _on_network_change(self, state: NetState) -> None:
        """One coalesced snapshot feeds both halves; MPTCP acts on it in its own task."""
        try:
            self.dns.update_network(state)
        except NetpathdError as error:
            log.error("DNS update failed: %s", error.message)
        self.mptcp.network_changed(state)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    service_manager.setup_logging(options.log_level or "info")
    try:
        return asyncio.run(Daemon(options).run())
    except NetpathdError as error:
        log.error("%s", error.message)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
