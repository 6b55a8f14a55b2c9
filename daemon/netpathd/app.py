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
from dataclasses import dataclass
from pathlib import Path

from netpathd import BUS_NAME, __version__, service_manager
from netpathd.errors import ConfigError, NetpathdError
from netpathd.manager import DaemonState, Manager
from netpathd.model.settings import LOG_LEVELS

log = logging.getLogger("netpathd")

BUS_ADDRESS_ENV = "NETPATHD_BUS_ADDRESS"


@dataclass(frozen=True, slots=True)
class Options:
    bus_address: str | None
    config_dir: Path
    state_dir: Path
    resolv_conf: Path
    log_level: str | None


def parse_options(argv: list[str]) -> Options:
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
        "--log-level", choices=LOG_LEVELS, help="overrides log-level of netpathd.conf"
    )
    parser.add_argument("--version", action="version", version=f"netpathd {__version__}")
    args = parser.parse_args(argv)
    return Options(
        bus_address=args.bus_address,
        config_dir=args.config_dir,
        state_dir=args.state_dir,
        resolv_conf=args.resolv_conf,
        log_level=args.log_level,
    )


async def serve(options: Options) -> int:
    from netpathd.bus.manager import ManagerInterface  # noqa: PLC0415 - keep --help fast
    from netpathd.bus.service import connect, publish  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    manager = Manager(options.config_dir, options.log_level, service_manager.set_log_level)
    manager.load_initial()
    service_manager.notify("STATUS=Connecting to the bus")

    bus = await connect(options.bus_address)
    try:
        await publish(bus, [ManagerInterface(manager)])
    except NetpathdError:
        bus.disconnect()
        raise

    reloads: set[asyncio.Task[None]] = set()

    def request_reload() -> None:
        async def reload() -> None:
            service_manager.notify("RELOADING=1")
            with contextlib.suppress(ConfigError):
                await manager.reload()
            service_manager.notify("READY=1")

        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, request_reload)

    manager.set_state(DaemonState.RUNNING)
    service_manager.notify("READY=1", f"STATUS=Serving {BUS_NAME}")
    log.info("netpathd %s ready on %s", __version__, options.bus_address or "the system bus")

    watchdog = None
    if (interval := service_manager.watchdog_interval()) is not None:
        watchdog = loop.create_task(service_manager.run_watchdog(interval))
    disconnected = loop.create_task(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
    stopped = loop.create_task(stop.wait())
    await asyncio.wait({disconnected, stopped}, return_when=asyncio.FIRST_COMPLETED)

    manager.set_state(DaemonState.STOPPING)
    service_manager.notify("STOPPING=1", "STATUS=Shutting down")
    for task in (watchdog, stopped):
        if task is not None:
            task.cancel()
    if disconnected.done():
        log.error("lost the connection to the bus, exiting")
        return 1
    bus.disconnect()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(disconnected, 1.0)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    service_manager.setup_logging(options.log_level or "info")
    try:
        return asyncio.run(serve(options))
    except NetpathdError as error:
        log.error("%s", error.message)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
