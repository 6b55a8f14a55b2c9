"""``netpathctl resolvconf`` (and ``resolvconf`` by that name): the hooks' own language.

wg-quick, OpenVPN's update-resolv-conf, dhclient-script and ifupdown call
``resolvconf -a KEY < resolv.conf`` and ``resolvconf -d KEY``; this entry point turns
those calls into netpathd's ``AddResolvconf``/``RemoveResolvconf``.  Options are read
with getopt as openresolv reads them (``-fd KEY`` works).  Every failure exits 1, as
both openresolv and Debian's resolvconf do, after checking stdin here first: bad text
never reaches the bus.  Hooks run it on every lease, so it imports only the standard
library, the pure parser and the D-Bus client.
"""

from __future__ import annotations

import asyncio
import fnmatch
import getopt
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netpathd.errors import InvalidArgument
from netpathd.model import resolvconf

if TYPE_CHECKING:
    from netpathd.ctl.client import Client

DNS = "org.netpathd1.Dns"
BUS_ADDRESS_ENV = "NETPATHD_BUS_ADDRESS"
NOT_FOUND = "org.netpathd1.Error.NotFound"
EXIT_FAILURE = 1
USAGE = (
    "usage: resolvconf [-m METRIC] [-p] [-x] -a KEY < FILE\n"
    "       resolvconf [-f] -d KEY\n"
    "       resolvconf -l [PATTERN...] | -i [PATTERN...] | -u\n"
    "KEY is IFACE[.PROTO]; the connection 'resolvconf:KEY' binds to IFACE."
)


class Usage(Exception):
    pass


@dataclass
class Request:
    command: str = ""  # a, d, l, i or u
    key: str = ""
    metric: int = 0
    exclusive: bool = False
    private: bool = False
    force: bool = False
    patterns: list[str] = field(default_factory=list)
    bus_address: str | None = None
    text: str = ""


SHORT_OPTIONS = "a:d:fhilm:pux"  # getopt's spelling: a colon follows an option's argument
LONG_OPTIONS = ["bus-address=", "help"]


def parse_args(argv: list[str]) -> Request:
    try:
        options, rest = getopt.getopt(argv, SHORT_OPTIONS, LONG_OPTIONS)
    except getopt.GetoptError as error:
        raise Usage(str(error)) from None
    request = Request(bus_address=os.environ.get(BUS_ADDRESS_ENV) or None)
    for option, value in options:
        _take(request, option, value)
    if not request.command:
        raise Usage("one of -a, -d, -l, -i, -u or -h is needed")
    if request.command in ("l", "i"):
        request.patterns = rest
    elif rest:
        raise Usage(f"unexpected argument {rest[0]!r}")
    if request.command in ("a", "d"):
        resolvconf.validate_key(request.key)
    return request


def _take(request: Request, option: str, value: str) -> None:
    if option in ("-a", "-d", "-l", "-i", "-u", "-h", "--help"):
        if request.command:
            raise Usage(f"-{request.command} and {option} cannot be combined")
        request.command, request.key = option.lstrip("-")[0], value
    elif option == "-m":
        if not value.isdecimal():
            raise Usage(f"-m {value!r}: the metric must be a number, 0 or more")
        request.metric = int(value)
    elif option == "--bus-address":
        request.bus_address = value
    else:  # -x, -p, -f
        setattr(request, {"-x": "exclusive", "-p": "private", "-f": "force"}[option], True)


def read_text(stream: Any) -> str:
    """stdin, bounded (a runaway writer is refused, not buffered) and UTF-8."""
    data: bytes = stream.read(resolvconf.MAX_TEXT + 1)
    if len(data) > resolvconf.MAX_TEXT:
        raise InvalidArgument(f"stdin: more than {resolvconf.MAX_TEXT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("stdin: not text (not UTF-8)") from None
    resolvconf.parse_text(text)
    return text


def record_text(settings: dict[str, Any]) -> str:
    """A record as resolv.conf lines again (for ``-l``)."""
    lines = [f"nameserver {server}" for server in settings["ipv4.dns"] + settings["ipv6.dns"]]
    search = [domain.removeprefix("~") for domain in settings["ipv4.dns-search"]]
    if search:
        lines.append("search " + " ".join(search))
    options = settings["ipv4.dns-options"] + settings["ipv6.dns-options"]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(f"{line}\n" for line in lines)


async def records(client: Client, patterns: list[str]) -> list[tuple[str, dict[str, Any]]]:
    (connections,) = await client.call(DNS, "GetConnections")
    found = []
    for name, settings in connections:
        if settings["source"].value != resolvconf.SOURCE:
            continue
        key = name.removeprefix(resolvconf.PREFIX)
        if not patterns or any(fnmatch.fnmatchcase(key, p) for p in patterns):
            found.append((key, {k: v.value for k, v in settings.items()}))
    return sorted(found, key=lambda item: item[1]["metric"])


async def perform(client: Client, request: Request) -> None:
    from netpathd.ctl.client import CallFailed  # noqa: PLC0415

    if request.command == "a":
        body = [request.key, request.text, request.metric, request.exclusive, request.private]
        await client.call(DNS, "AddResolvconf", "ssubb", body)
    elif request.command == "d":
        try:
            await client.call(DNS, "RemoveResolvconf", "s", [request.key])
        except CallFailed as error:
            if not (request.force and error.name == NOT_FOUND):
                raise
    elif request.command == "i":
        for key, _ in await records(client, request.patterns):
            print(key)
    elif request.command == "l":
        for key, settings in await records(client, request.patterns):
            print(f"# resolv.conf from {key}\n{record_text(settings)}", end="")
    else:  # -u: netpathd rewrites on every change; this only asks that it is there
        await records(client, [])


async def dispatch(request: Request) -> None:
    from netpathd.ctl.cli import CALL_TIMEOUT  # noqa: PLC0415
    from netpathd.ctl.client import Client  # noqa: PLC0415

    client = await Client.connect(request.bus_address, CALL_TIMEOUT, interactive=False)
    try:
        await perform(client, request)
    finally:
        client.close()


def main(argv: list[str]) -> int:
    from netpathd.ctl.cli import UsageError  # noqa: PLC0415
    from netpathd.ctl.client import CallFailed  # noqa: PLC0415

    try:
        request = parse_args(argv)
        if request.command == "h":
            print(USAGE)
            return 0
        if request.command == "a":
            request.text = read_text(sys.stdin.buffer)
        asyncio.run(dispatch(request))
    except Usage as error:
        print(f"resolvconf: {error}\n{USAGE}", file=sys.stderr)
        return EXIT_FAILURE
    except (InvalidArgument, UsageError) as error:
        print(f"resolvconf: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except CallFailed as error:
        print(f"resolvconf: {error.text}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
