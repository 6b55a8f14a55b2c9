"""``netpathctl dns``: connections, the resolver order and why it is so.

``set`` takes nmcli-style key/value pairs (``ipv4.dns 192.0.2.53,192.0.2.54``),
typed by the key's D-Bus signature; an empty value clears a list.  Validation
beyond the type is the daemon's, so the CLI and D-Bus callers get the same
answers.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING, Any

from netpathd.ctl.cli import UsageError, Verbs, add_verb, checked_here, emit, snake_keys, table
from netpathd.model.dns_settings import (
    CONNECTION_TYPES,
    SETTINGS_SIGNATURES,
    make_global_priority,
    validate_priority,
)
from netpathd.model.hints import did_you_mean

if TYPE_CHECKING:
    from dbus_fast import Variant

    from netpathd.ctl.client import Client

DNS = "org.netpathd1.Dns"


def parse_settings(pairs: list[str]) -> dict[str, Variant]:
    from dbus_fast import Variant  # noqa: PLC0415

    if len(pairs) % 2:
        raise UsageError(f"setting {pairs[-1]!r} has no value")
    settings: dict[str, Variant] = {}
    for key, text in zip(pairs[::2], pairs[1::2], strict=True):
        signature = SETTINGS_SIGNATURES.get(key)
        if signature is None:
            known = ", ".join(SETTINGS_SIGNATURES)
            hint = did_you_mean(key, SETTINGS_SIGNATURES)
            raise UsageError(f"unknown setting {key!r} (known: {known}){hint}")
        if signature == "as":
            items = [item for item in text.replace(",", " ").split() if item]
            settings[key] = Variant("as", items)
        elif signature == "i":
            try:
                value = int(text)
            except ValueError:
                raise UsageError(f"{key} takes an integer, got {text!r}") from None
            with checked_here():  # an int32 cannot even carry what lies outside
                settings[key] = Variant("i", validate_priority(key, value))
        else:
            settings[key] = Variant("s", text)
    return settings


def plain(settings: dict[str, Variant]) -> dict[str, Any]:
    return {key: variant.value for key, variant in settings.items()}


async def set_connection(client: Client, args: argparse.Namespace) -> None:
    name, *pairs = args.words
    settings = parse_settings(pairs)
    method = "SetConnectionRuntime" if args.runtime else "SetConnection"
    await client.call(DNS, method, "sa{sv}", [name, settings])


async def remove_connection(client: Client, args: argparse.Namespace) -> None:
    await client.call(DNS, "RemoveConnection", "s", [args.name])


def plain_route(route: dict[str, Variant]) -> dict[str, Any]:
    values = plain(route)
    values["losers"] = [plain(loser) for loser in values["losers"]]
    return values


def route_rows(routes: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            route["domain"],
            route["connection"],
            route["interface"],
            route["priority"],
            " ".join(route["servers"]) or "-",
        ]
        for route in routes
    ]


ROUTE_HEADERS = ["DOMAIN", "CONNECTION", "DEVICE", "PRIORITY", "SERVERS"]


async def show(client: Client, args: argparse.Namespace) -> None:
    (connections,) = await client.call(DNS, "GetConnections")
    (routes,) = await client.call(DNS, "ExplainDomains")
    properties = await client.get_all(DNS)
    data = {
        "mode": properties["Mode"],
        "backend_state": properties["BackendState"],
        "connections": [{"name": name, **plain(settings)} for name, settings in connections],
        "domains": [plain_route(route) for route in routes],
        "nameservers": properties["Nameservers"],
        "search": properties["SearchDomains"],
        "resolv_conf": properties["ResolvConfPath"],
        "global_dns_priority": list(properties["GlobalDnsPriority"]),
    }
    rows = [
        [
            conn["name"],
            conn["connection.interface-name"],
            conn["connection.type"],
            conn["source"],
            "yes" if conn["active"] else "no",
            conn["ipv4.effective-dns-priority"],
            conn["ipv6.effective-dns-priority"],
            " ".join(conn["ipv4.dns"] + conn["ipv6.dns"]) or "-",
        ]
        for conn in data["connections"]
    ]
    text = "\n".join(
        [
            table(["NAME", "DEVICE", "TYPE", "SOURCE", "ACTIVE", "PRIO4", "PRIO6", "DNS"], rows),
            "",
            f"Nameservers: {' '.join(data['nameservers']) or '-'}",
            f"Search:      {' '.join(data['search']) or '-'}",
            f"File:        {data['resolv_conf']} (rc-manager {properties['RcManager']})",
            f"Mode:        {data['mode']} ({data['backend_state']})",
            "",
            table(ROUTE_HEADERS, route_rows(data["domains"])),
        ]
    )
    emit(args, data, text)


async def explain_domains(client: Client, args: argparse.Namespace) -> None:
    """Per domain the winner, then each loser indented under it, with why."""
    (routes,) = await client.call(DNS, "ExplainDomains")
    data = [plain_route(route) for route in routes]
    rows = []
    for route, row in zip(data, route_rows(data), strict=True):
        rows.append([*row, route["reason"]])
        rows += [
            ["", f"  lost: {loser['connection']}", loser["interface"], loser["priority"], "-",
             loser["reason"]]
            for loser in route["losers"]
        ]  # fmt: skip
    emit(args, data, table([*ROUTE_HEADERS, "WHY"], rows))


async def explain(client: Client, args: argparse.Namespace) -> None:
    if args.domains:
        await explain_domains(client, args)
        return
    (entries,) = await client.call(DNS, "Explain")
    data = [snake_keys(plain(entry)) for entry in entries]
    rows = [
        [
            index,
            entry["connection"],
            entry["interface"],
            entry["family"],
            f"{entry['priority']} ({entry['priority_source']})",
            entry["rank"] or "-",
            entry["status"],
            " ".join(entry["servers"]) or "-",
            entry["reason"],
        ]
        for index, entry in enumerate(data, start=1)
    ]
    headers = ["#", "CONNECTION", "DEVICE", "FAMILY", "PRIORITY", "RANK", "STATUS", "SERVERS"]
    emit(args, data, table([*headers, "WHY"], rows))


async def global_priority(client: Client, args: argparse.Namespace) -> None:
    from dbus_fast import Variant  # noqa: PLC0415

    if args.values:
        if len(args.values) != 2:
            raise UsageError("global-priority takes IPV4 IPV6 (0 means unset)")
        with checked_here():
            make_global_priority(*args.values)
        await client.set_property(DNS, "GlobalDnsPriority", Variant("(ii)", args.values))
        return
    properties = await client.get_all(DNS)
    ipv4, ipv6 = properties["GlobalDnsPriority"]
    emit(args, {"ipv4": ipv4, "ipv6": ipv6}, f"ipv4.dns-priority {ipv4}\nipv6.dns-priority {ipv6}")


_VALUE_KINDS = {
    "s": "text",
    "as": "list, comma- or space-separated; '' clears",
    "i": "integer; lower goes first, a negative one excludes higher ones",
}


def _keys_help() -> str:
    width = max(len(key) for key in SETTINGS_SIGNATURES)
    kinds = {key: _VALUE_KINDS[signature] for key, signature in SETTINGS_SIGNATURES.items()}
    kinds["connection.type"] = "one of the types below"
    lines = [f"  {key:<{width}}  {kind}" for key, kind in kinds.items()]
    types = textwrap.fill(", ".join(sorted(CONNECTION_TYPES)), 76, initial_indent="  ",
                          subsequent_indent="  ")  # fmt: skip
    return "\n".join(["KEY is one of:", *lines, "", "connection.type is one of:", types])


def register(verbs: Verbs) -> None:
    dns = add_verb(verbs, "dns", "DNS connections and the resolver order")
    sub = dns.add_subparsers(dest="dns_verb", metavar="COMMAND", required=True)

    setter = add_verb(
        sub, "set", "create or update a connection (nmcli-style keys)", runtime=True,
        usage="%(prog)s NAME [KEY VALUE]... [--runtime] [--json]", epilog=_keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    setter.add_argument("words", nargs="+", metavar="NAME", help=argparse.SUPPRESS)
    setter.set_defaults(handler=set_connection)

    remover = add_verb(sub, "remove", "remove a connection")
    remover.add_argument("name", metavar="NAME")
    remover.set_defaults(handler=remove_connection)

    add_verb(
        sub, "show", "connections, the resulting servers, the mode and the domain routes"
    ).set_defaults(handler=show)
    explainer = add_verb(sub, "explain", "why the servers are in this order")
    explainer.add_argument(
        "--domains", action="store_true", help="which connection answers each domain, and why"
    )
    explainer.set_defaults(handler=explain)
    priority = add_verb(sub, "global-priority", "show or set the global defaults")
    priority.add_argument("values", nargs="*", type=int, metavar="IPV4 IPV6")
    priority.set_defaults(handler=global_priority)
