"""``netpathctl mptcp``: the grammar of ``ip mptcp``, spoken to org.netpathd1.Mptcp.

``endpoint add|delete|change|flush|show``, ``limits set|show``, ``enabled``,
``show`` (connections, like ``ss -M``) and ``monitor`` (like ``ip mptcp
monitor``).  Words follow iproute2 (``dev``, ``port``, ``id``, ``subflow``,
``add_addr_accepted``) so that the guide's commands work with ``netpathctl``
in front; ``--runtime`` picks the D-Bus ``*Runtime`` method (not persisted).
Only dbus-fast and the standard library are imported, and dbus-fast lazily.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from netpathd.ctl import mptcp_app
from netpathd.ctl.cli import UsageError, emit

if TYPE_CHECKING:
    from netpathd.ctl.client import Client

MPTCP = "org.netpathd1.Mptcp"
U32_MAX = 0xFFFFFFFF


def _number(word: str, what: str, high: int = U32_MAX) -> int:
    try:
        value = int(word, 10)
    except ValueError:
        raise UsageError(f"{what}: {word!r} is not a number") from None
    if not 0 <= value <= high:
        raise UsageError(f"{what} {value} outside 0..{high}")
    return value


def _pairs(words: list[str], keys: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split ``KEY VALUE`` pairs (for ``keys``, mapping spellings to names) from the rest."""
    found: dict[str, str] = {}
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in keys:
            if index + 1 >= len(words):
                raise UsageError(f"{word!r} needs a value")
            found[keys[word]] = words[index + 1]
            index += 2
        else:
            rest.append(word)
            index += 1
    return found, rest


def endpoint_dict(struct: list[Any]) -> dict[str, Any]:
    endpoint_id, address, port, interface, flags = struct
    return {"id": endpoint_id, "address": address, "port": port, "interface": interface,
            "flags": list(flags)}  # fmt: skip


def endpoint_line(endpoint: dict[str, Any]) -> str:
    """The line ``ip mptcp endpoint show`` prints for it."""
    words = [endpoint["address"]]
    if endpoint["port"]:
        words += ["port", str(endpoint["port"])]
    words += ["id", str(endpoint["id"]), *endpoint["flags"]]
    if endpoint["interface"]:
        words += ["dev", endpoint["interface"]]
    return " ".join(words)


async def _endpoints(client: Client) -> list[dict[str, Any]]:
    properties = "org.freedesktop.DBus.Properties"
    (value,) = await client.call(properties, "Get", "ss", [MPTCP, "Endpoints"])
    return [endpoint_dict(struct) for struct in value.value]


# -- endpoint ------------------------------------------------------------------------


async def endpoint_show(client: Client, args: argparse.Namespace) -> None:
    endpoints = await _endpoints(client)
    emit(args, endpoints, "\n".join(endpoint_line(e) for e in endpoints))


async def endpoint_add(client: Client, args: argparse.Namespace) -> None:
    found, flags = _pairs(args.words, {"dev": "dev", "port": "port", "id": "id"})
    port = _number(found["port"], "port", 65535) if "port" in found else 0
    endpoint_id = _number(found["id"], "id") if "id" in found else 0
    member = "AddEndpointRuntime" if args.runtime else "AddEndpoint"
    body = [args.address, flags, found.get("dev", ""), port, endpoint_id]
    (new_id,) = await client.call(MPTCP, member, "sassqu", body)
    emit(args, {"id": new_id}, "")


async def _resolve_id(client: Client, words: list[str]) -> int:
    """``id ID`` or an address, as ``ip mptcp endpoint delete`` accepts."""
    found, rest = _pairs(words, {"id": "id"})
    if "id" in found:
        return _number(found["id"], "id")
    if len(rest) != 1:
        raise UsageError("expected 'id ID' or an endpoint address")
    for endpoint in await _endpoints(client):
        if endpoint["address"] == rest[0]:
            return int(endpoint["id"])
    from netpathd.ctl.client import CallFailed  # noqa: PLC0415

    raise CallFailed("org.netpathd1.Error.NotFound", f"no MPTCP endpoint with address {rest[0]}")


async def endpoint_delete(client: Client, args: argparse.Namespace) -> None:
    endpoint_id = await _resolve_id(client, args.words)
    await client.call(MPTCP, "RemoveEndpoint", "u", [endpoint_id])


async def endpoint_change(client: Client, args: argparse.Namespace) -> None:
    """Only the words given change: SET_FLAGS overwrites backup and fullmesh together,
    so the current flags are read first and the full wanted state is sent."""
    found, rest = _pairs(args.words, {"id": "id"})
    if "id" not in found:
        raise UsageError("expected 'id ID'")
    endpoint_id = _number(found["id"], "id")
    current = next((e for e in await _endpoints(client) if e["id"] == endpoint_id), None)
    flags = {f for f in (current or {"flags": []})["flags"] if f in ("backup", "fullmesh")}
    for word in rest:
        if word in ("backup", "fullmesh"):
            flags.add(word)
        elif word in ("nobackup", "nofullmesh"):
            flags.discard(word.removeprefix("no"))
        else:
            raise UsageError(f"unknown word {word!r} (backup, nobackup, fullmesh, nofullmesh)")
    await client.call(MPTCP, "SetEndpointFlags", "uas", [endpoint_id, sorted(flags)])


async def endpoint_flush(client: Client, args: argparse.Namespace) -> None:
    await client.call(MPTCP, "FlushEndpoints")


# -- limits and enabled ----------------------------------------------------------------


async def limits_show(client: Client, args: argparse.Namespace) -> None:
    values = await client.get_all(MPTCP)
    limits = {"subflows": values["Subflows"], "add_addr_accepted": values["AddAddrAccepted"]}
    emit(args, limits, f"add_addr_accepted {limits['add_addr_accepted']} "
                       f"subflows {limits['subflows']}")  # fmt: skip


async def limits_set(client: Client, args: argparse.Namespace) -> None:
    keys = {"subflow": "subflows", "subflows": "subflows", "add_addr_accepted": "add_addr"}
    found, rest = _pairs(args.words, keys)
    if rest or not found:
        raise UsageError("expected [subflow N] [add_addr_accepted N]")
    values = await client.get_all(MPTCP)
    subflows = _number(found["subflows"], "subflow") if "subflows" in found else None
    accepted = _number(found["add_addr"], "add_addr_accepted") if "add_addr" in found else None
    body = [
        values["Subflows"] if subflows is None else subflows,
        values["AddAddrAccepted"] if accepted is None else accepted,
    ]
    await client.call(MPTCP, "SetLimitsRuntime" if args.runtime else "SetLimits", "uu", body)


async def enabled(client: Client, args: argparse.Namespace) -> None:
    value = {"yes": True, "no": False}.get(args.value, args.value)
    if value is None:
        value = (await client.get_all(MPTCP))["Enabled"]
        emit(args, {"enabled": value}, "yes" if value else "no")
        return
    if args.runtime:
        await client.call(MPTCP, "SetEnabledRuntime", "b", [value])
    else:
        from dbus_fast import Variant  # noqa: PLC0415

        await client.set_property(MPTCP, "Enabled", Variant("b", value))


# -- connections and events ----------------------------------------------------------


def _plain(value: Any) -> Any:
    """Variants (nested) to plain JSON-able values."""
    from dbus_fast import Variant  # noqa: PLC0415

    if isinstance(value, Variant):
        return _plain(value.value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def connections_text(connections: list[dict[str, Any]]) -> str:
    lines = []
    for conn in connections:
        local = _host_port(conn["local_address"], conn["local_port"])
        remote = _host_port(conn["remote_address"], conn["remote_port"])
        lines.append(
            f"{conn['state']:<12} {local:<24} {remote:<24} token {conn['token']:08x} "
            f"subflows {len(conn['subflows'])} sent {conn['bytes_sent']} "
            f"received {conn['bytes_received']}"
        )
        for sub in conn["subflows"]:
            local = _host_port(sub["local_address"], sub["local_port"])
            remote = _host_port(sub["remote_address"], sub["remote_port"])
            lines.append(
                f"  subflow {sub['state']:<12} {local:<24} {remote:<24} "
                f"id {sub['local_id']}/{sub['remote_id']}{' backup' if sub['backup'] else ''} "
                f"sent {sub['bytes_sent']} received {sub['bytes_received']}"
            )
    return "\n".join(lines)


async def show(client: Client, args: argparse.Namespace) -> None:
    (connections,) = await client.call(MPTCP, "GetConnections")
    plain = _plain(connections)
    emit(args, plain, connections_text(plain))


def event_line(kind: str, details: dict[str, Any]) -> str:
    """``ip mptcp monitor``'s shape: ``[KIND] key=value ...``."""
    fields = " ".join(f"{key}={value}" for key, value in details.items())
    return f"[{kind.upper():>16}] {fields}".rstrip()


async def monitor(client: Client, args: argparse.Namespace) -> None:
    """Print every Event signal until Ctrl-C or SIGTERM (exit 0).

    Signals need a connection of our own with a match rule; the Client's
    connection only makes calls (and first proves that netpathd answers).
    """
    from dbus_fast import Message, MessageType  # noqa: PLC0415

    from netpathd import BUS_NAME, OBJECT_PATH  # noqa: PLC0415

    await client.call("org.freedesktop.DBus.Peer", "Ping")  # exit 69 without a daemon
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def on_message(message: Message) -> bool | None:
        if (
            message.message_type is MessageType.SIGNAL
            and message.interface == MPTCP
            and message.member == "Event"
        ):
            kind, details = message.body
            plain = _plain(details)
            line = json.dumps({"kind": kind, "details": plain}, sort_keys=True)
            print(line if args.json else event_line(kind, plain), flush=True)
        return None

    client.add_message_handler(on_message)
    await client.add_match(
        f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{MPTCP}'"
    )
    # on stderr, so that stdout holds only events (and scripts can wait for this line)
    print("monitoring MPTCP events (Ctrl-C to stop)", file=sys.stderr, flush=True)
    await stop.wait()


# -- the verbs table -----------------------------------------------------------------


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mptcp`` and its sub-verbs to netpathctl's verbs table."""
    mptcp = verbs.add_parser("mptcp", help="Multipath TCP: endpoints, limits, connections")
    # --json may also follow the verb (netpathctl mptcp endpoint show --json)
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    runtime = argparse.ArgumentParser(add_help=False)
    runtime.add_argument("--runtime", action="store_true", help="do not persist the change")
    objects = mptcp.add_subparsers(dest="mptcp_object", metavar="OBJECT", required=True)

    endpoint = objects.add_parser("endpoint", help="the endpoint table (ip mptcp endpoint)")
    endpoint.set_defaults(handler=endpoint_show)
    actions = endpoint.add_subparsers(dest="endpoint_action", metavar="ACTION")
    add = actions.add_parser(
        "add", parents=[parent, runtime], help="ADDRESS [dev IFNAME] [port PORT] [id ID] "
        "[signal|subflow|backup|fullmesh ...]",
    )  # fmt: skip
    add.add_argument("address")
    add.add_argument("words", nargs="*")
    add.set_defaults(handler=endpoint_add)
    for name, handler, usage in (
        ("delete", endpoint_delete, "id ID | ADDRESS"),
        ("change", endpoint_change, "id ID [backup|nobackup] [fullmesh|nofullmesh]"),
    ):
        action = actions.add_parser(name, parents=[parent], help=usage)
        action.add_argument("words", nargs="*")
        action.set_defaults(handler=handler)
    actions.add_parser("flush", parents=[parent], help="remove every endpoint").set_defaults(
        handler=endpoint_flush
    )
    actions.add_parser("show", parents=[parent], help="list endpoints").set_defaults(
        handler=endpoint_show
    )

    limits = objects.add_parser("limits", help="ip mptcp limits")
    limits.set_defaults(handler=limits_show)
    limit_actions = limits.add_subparsers(dest="limits_action", metavar="ACTION")
    limit_set = limit_actions.add_parser(
        "set", parents=[parent, runtime], help="[subflow N] [add_addr_accepted N]"
    )
    limit_set.add_argument("words", nargs="*")
    limit_set.set_defaults(handler=limits_set)
    limit_actions.add_parser("show", parents=[parent], help="show the limits").set_defaults(
        handler=limits_show
    )

    switch = objects.add_parser(
        "enabled", parents=[parent, runtime], help="show or set net.mptcp.enabled"
    )
    switch.add_argument("value", nargs="?", choices=("yes", "no"))
    switch.set_defaults(handler=enabled)
    for name, value in (("enable", True), ("disable", False)):
        objects.add_parser(
            name, parents=[parent, runtime], help=f"set net.mptcp.enabled to {int(value)}"
        ).set_defaults(handler=enabled, value=value)
    objects.add_parser(
        "show", parents=[parent], help="connections and their subflows (ss -M)"
    ).set_defaults(handler=show)
    objects.add_parser(
        "monitor", parents=[parent], help="print path-manager events (ip mptcp monitor)"
    ).set_defaults(handler=monitor)
    mptcp_app.register(objects, parent)
