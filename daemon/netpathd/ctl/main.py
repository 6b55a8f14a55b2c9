"""netpathctl: the command-line client of netpathd.

A verbs table in the manner of resolvectl and ``ip``: each verb module adds
its sub-commands; exit codes come from D-Bus error names in one table.
"""

from __future__ import annotations

import os
import sys

from netpathd import keep_openssl_out

# `netpathctl run` and `resolvconf` start here too and must not pay for the verbs' imports
# (argparse, typing, json, ...): those are imported where they are used.  mypy reads
# TYPE_CHECKING as true whatever its value.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from netpathd.ctl.client import Client  # keeps dbus-fast out of verbs without the daemon

BUS_ADDRESS_ENV = "NETPATHD_BUS_ADDRESS"

# What a script can test for, derived from the D-Bus error name in one place.
EXIT_CODES: dict[str, int] = {
    "org.netpathd1.Error.Failed": 1,
    "org.netpathd1.Error.InvalidArgument": 2,
    "org.netpathd1.Error.NotFound": 3,
    "org.netpathd1.Error.PermissionDenied": 4,
    "org.freedesktop.DBus.Error.AccessDenied": 4,
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired": 4,
    "org.netpathd1.Error.AlreadyExists": 5,
    "org.netpathd1.Error.NotSupported": 6,
    "org.netpathd1.Error.InvalidConfiguration": 7,
    "org.freedesktop.DBus.Error.ServiceUnknown": 69,
    "org.freedesktop.DBus.Error.NameHasNoOwner": 69,
    "org.freedesktop.DBus.Error.NoReply": 69,  # also our own timeout
    "": 69,  # no bus at all
}


async def show_status(client: Client, args: argparse.Namespace) -> None:
    from netpathd.ctl.cli import emit, snake_keys  # noqa: PLC0415 - see TYPE_CHECKING

    values = await client.get_all("org.netpathd1.Manager")
    width = max(len(name) for name in values)
    emit(
        args,
        snake_keys(values),
        "\n".join(f"{name:>{width}}: {value}" for name, value in values.items()),
    )


async def reload(client: Client, args: argparse.Namespace) -> None:
    await client.call("org.netpathd1.Manager", "Reload")


def _seconds(text: str) -> float:
    import argparse  # noqa: PLC0415 - see TYPE_CHECKING

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - see TYPE_CHECKING

    from netpathd import __version__  # noqa: PLC0415
    from netpathd.ctl import dns, mptcp  # noqa: PLC0415
    from netpathd.ctl.cli import CALL_TIMEOUT, add_verb  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="netpathctl", description="Control netpathd. Without a VERB: status."
    )
    parser.add_argument(
        "--bus-address",
        default=os.environ.get(BUS_ADDRESS_ENV) or None,
        help=f"D-Bus address of netpathd (default: ${BUS_ADDRESS_ENV}, else the system bus)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (anywhere)")
    parser.add_argument(
        "--runtime",
        action="store_true",
        help="with a verb that changes something: not persisted, gone at restart (anywhere)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=CALL_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the bus and each answer (default: {CALL_TIMEOUT:g})",
    )
    parser.add_argument("--version", action="version", version=f"netpathctl {__version__}")
    # like nmcli and resolvectl, no verb shows the status
    parser.set_defaults(handler=show_status, accepts_runtime=False)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    add_verb(verbs, "status", "show the daemon's state").set_defaults(handler=show_status)
    add_verb(verbs, "reload", "re-read the configuration").set_defaults(handler=reload)
    mptcp.register(verbs)
    dns.register(verbs)
    runner = verbs.add_parser(
        "run", help="run a command with its TCP sockets turned into MPTCP", add_help=False
    )
    runner.add_argument("command", nargs=argparse.REMAINDER, metavar="[-v] -- COMMAND [ARGS...]")
    # In the table for --help; main() hands its arguments to netpathd.ctl.resolvconf, which
    # reads them with getopt, as resolvconf does.
    compat = verbs.add_parser(
        "resolvconf", help="act as the resolvconf command (-a, -d, -l, -i, -u)", add_help=False
    )
    compat.add_argument("arguments", nargs=argparse.REMAINDER, metavar="[-m M] [-x] [-p] -a KEY")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The call a command line asks for; UsageError (or argparse's exit 2) if none."""
    from netpathd.ctl.cli import UsageError  # noqa: PLC0415 - see TYPE_CHECKING
    from netpathd.ctl.verbs import normalize, verbs_where  # noqa: PLC0415

    parser = build_parser()
    args = parser.parse_args(normalize(parser, argv))
    if args.runtime and not args.accepts_runtime:
        verbs = ", ".join(verbs_where(parser, "accepts_runtime"))
        raise UsageError(f"--runtime applies only to verbs that can skip persisting: {verbs}")
    return args


async def dispatch(args: argparse.Namespace) -> int:
    from netpathd.ctl.cli import UsageError  # noqa: PLC0415
    from netpathd.ctl.client import CallFailed, Client  # noqa: PLC0415

    try:
        # On a terminal a person can answer polkit's password prompt (as systemctl does).
        client = await Client.connect(args.bus_address, args.timeout, interactive=os.isatty(0))
        try:
            await args.handler(client, args)
        finally:
            client.close()
    except CallFailed as error:
        print(f"netpathctl: {error.text}", file=sys.stderr)
        return EXIT_CODES.get(error.name, 1)
    except UsageError as error:
        print(f"netpathctl: {error}", file=sys.stderr)
        return EXIT_CODES["org.netpathd1.Error.InvalidArgument"]
    return 0


def resolvconf_arguments(argv: list[str]) -> list[str] | None:
    """The arguments of ``netpathctl [OPTION...] resolvconf ARGS``, else None.

    Of netpathctl's own options only ``--bus-address`` means something to resolvconf.
    """
    index, bus = 0, []
    while index < len(argv) and argv[index].startswith("--"):
        option, equals, value = argv[index].partition("=")
        takes_value = option in ("--bus-address", "--timeout") and not equals
        if takes_value:
            value = argv[index + 1] if index + 1 < len(argv) else ""
        if option == "--bus-address":
            bus = [f"--bus-address={value}"]
        index += 2 if takes_value else 1
    if argv[index : index + 1] != ["resolvconf"]:
        return None
    return [*bus, *argv[index + 1 :]]


def main(argv: list[str] | None = None) -> int:
    keep_openssl_out()  # before the bus client loads asyncio and dbus-fast
    if argv is None:
        argv = sys.argv[1:]
        if os.path.basename(sys.argv[0]) == "resolvconf":  # the /usr/sbin/resolvconf link
            argv = ["resolvconf", *argv]
    if (arguments := resolvconf_arguments(argv)) is not None:
        # Called by DHCP and VPN hooks on every lease: none of the other verbs' imports.
        from netpathd.ctl.resolvconf import main as resolvconf  # noqa: PLC0415

        return resolvconf(arguments)
    if argv[:1] == ["run"]:
        # `run` never talks to the daemon: it must not pay for (or depend on) the bus.
        from netpathd.ctl.run import run  # noqa: PLC0415

        return run(argv[1:])
    from netpathd.ctl.cli import UsageError  # noqa: PLC0415

    try:
        args = parse(argv)
    except UsageError as error:
        print(f"netpathctl: {error}", file=sys.stderr)
        return EXIT_CODES["org.netpathd1.Error.InvalidArgument"]
    if args.verb == "run":
        from netpathd.ctl.run import run  # noqa: PLC0415

        return run(args.command)
    import asyncio  # noqa: PLC0415
    import signal  # noqa: PLC0415

    try:
        return asyncio.run(dispatch(args))
    except KeyboardInterrupt:  # Ctrl-C ends a wait: report it as a shell does, no traceback
        return 128 + signal.SIGINT


if __name__ == "__main__":
    raise SystemExit(main())
