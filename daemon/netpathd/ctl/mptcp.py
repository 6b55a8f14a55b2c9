"""``netpathctl mptcp``: the grammar of ``ip mptcp``, spoken to org.netpathd1.Mptcp.

``endpoint add|change|delete|show|flush``, ``limits set|show``, ``enabled``,
``show`` (connections, like ``ss -M``) and ``monitor`` (like ``ip mptcp
monitor``).  Words follow iproute2 (``dev``, ``port``, ``id``, ``subflow``,
``add_addr_accepted``) so that the guide's commands work with ``netpathctl``
in front; ``--runtime`` picks the D-Bus ``*Runtime`` method (not persisted).
Only dbus-fast (lazily), the standard library and the pure core are imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from netpathd.ctl import mptcp_app
from netpathd.ctl.cli import UsageError, Verbs, add_verb, checked_here, emit, unwrap
from netpathd.ctl.verbs import first_match
from netpathd.model.mptcp import (
    CHANGEABLE_FLAGS,
    MAX_LIMIT,
    REQUESTABLE_FLAGS,
    EndpointFlag,
    validate_endpoint_id,
    validate_limit,
    validate_port,
)

if TYPE_CHECKING:
    from netpathd.ctl.client import Client

MPTCP = "org.netpathd1.Mptcp"

ADD_GRAMMAR = "ADDRESS [dev IFNAME] [id ID] [port PORT] [FLAG...]"
CHANGE_GRAMMAR = "id ID [backup|nobackup] [fullmesh|nofullmesh]"
DELETE_GRAMMAR = "id ID | ADDRESS"
LIMITS_GRAMMAR = "[subflows N] [add_addr_accepted N]"


def _integer(word: str, what: str) -> int:
    try:
        return int(word, 10)
    except ValueError:
        raise UsageError(f"{what}: {word!r} is not a number") from None


def _endpoint_id(word: str, *, allow_zero: bool) -> int:
    value = _integer(word, "id")
    with checked_here():
        validate_endpoint_id(value, allow_zero=allow_zero)
    return value


def _pairs(words: list[str], keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``KEY VALUE`` pairs from the rest; a key may be abbreviated as ``ip`` allows
    (``d`` for ``dev``), the first of ``keys`` it begins winning, as in ``mptcp_parse_opt``."""
    found: dict[str, str] = {}
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        key = first_match(word, keys)
        if key is None:
            rest.append(word)
            index += 1
            continue
        if index + 1 >= len(words):
            raise UsageError(f"{key} needs a value")
        found[key] = words[index + 1]
        index += 2
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


def endpoint_words(words: list[str]) -> tuple[str, dict[str, str], list[str]]:
    """``ADDRESS [dev IFNAME] [id ID] [port PORT] [FLAG...]``: the address, pairs, flags.

    Flags are compared whole, as ``ip`` does; the daemon names the unknown ones."""
    found, flags = _pairs(words[1:], ["id", "dev", "port"])
    return words[0], found, flags


def add_body(words: list[str]) -> list[Any]:
    """The AddEndpoint call's arguments for ``endpoint add`` words."""
    address, found, flags = endpoint_words(words)
    port = _integer(found["port"], "port") if "port" in found else 0
    with checked_here():
        validate_port(port)
    endpoint_id = _endpoint_id(found["id"], allow_zero=True) if "id" in found else 0
    return [address, flags, found.get("dev", ""), port, endpoint_id]


async def endpoint_add(client: Client, args: argparse.Namespace) -> None:
    member = "AddEndpointRuntime" if args.runtime else "AddEndpoint"
    (new_id,) = await client.call(MPTCP, member, "sassqu", add_body(args.words))
    emit(args, {"id": new_id}, "")


async def _resolve_id(client: Client, words: list[str]) -> int:
    """``id ID`` or an address, as ``ip mptcp endpoint delete`` accepts."""
    found, rest = _pairs(words, ["id"])
    if "id" in found:
        return _endpoint_id(found["id"], allow_zero=False)
    if len(rest) != 1:
        raise UsageError(
            f"one endpoint at a time, not {' '.join(rest)!r}: expected {DELETE_GRAMMAR}"
        )
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
    found, rest = _pairs(args.words, ["id"])
    if "id" not in found:
        raise UsageError(f"expected {CHANGE_GRAMMAR}")
    endpoint_id = _endpoint_id(found["id"], allow_zero=False)
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


def limit_values(words: list[str]) -> dict[str, int]:
    """``[subflows N] [add_addr_accepted N]``: the limits given, by their kernel names."""
    found, rest = _pairs(words, ["subflows", "add_addr_accepted"])
    if rest:
        raise UsageError(f"unknown word {rest[0]!r}: expected {LIMITS_GRAMMAR}")
    if not found:
        raise UsageError(f"expected {LIMITS_GRAMMAR}")
    limits = {name: _integer(word, name) for name, word in found.items()}
    with checked_here():
        for name, value in limits.items():
            validate_limit(name, value)
    return limits


async def limits_set(client: Client, args: argparse.Namespace) -> None:
    limits = limit_values(args.words)
    values = await client.get_all(MPTCP)
    body = [
        limits.get("subflows", values["Subflows"]),
        limits.get("add_addr_accepted", values["AddAddrAccepted"]),
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
    plain = unwrap(connections)
    emit(args, plain, connections_text(plain))


def event_line(kind: str, details: dict[str, Any]) -> str:
    """``ip mptcp monitor``'s shape: ``[KIND] key=value ...``, the token in hex as ``ip``,
    ``ss`` and ``mptcp show`` print it."""
    fields = " ".join(
        f"{key}={value:08x}" if key == "token" else f"{key}={value}"
        for key, value in details.items()
    )
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
            plain = unwrap(details)
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


def _flag_help() -> str:
    requestable = ", ".join(flag.value for flag in EndpointFlag if flag in REQUESTABLE_FLAGS)
    return (
        f"FLAG is one of {requestable}; signal and fullmesh exclude each other, and port "
        "needs signal (the kernel then listens on ADDRESS:PORT). Without id the kernel picks one."
    )


def register(verbs: Verbs) -> None:
    """Add ``mptcp`` and its sub-verbs to netpathctl's verbs table.

    The order of each table is ``ip mptcp``'s (``do_mptcp``), because abbreviations pick the
    first verb they begin: ``e`` is endpoint, ``l s`` is ``limits set``.
    """
    mptcp = add_verb(verbs, "mptcp", "Multipath TCP: endpoints, limits, connections")
    objects = mptcp.add_subparsers(dest="mptcp_object", metavar="OBJECT", required=True)

    endpoint = add_verb(objects, "endpoint", "the endpoint table (ip mptcp endpoint)")
    endpoint.set_defaults(handler=endpoint_show)
    actions = endpoint.add_subparsers(dest="endpoint_action", metavar="ACTION")
    add = add_verb(
        actions, "add", "add an endpoint", runtime=True, epilog=_flag_help(),
        usage=f"%(prog)s {ADD_GRAMMAR} [--runtime] [--json]",
    )  # fmt: skip
    add.add_argument("words", nargs="+", metavar="ADDRESS", help=argparse.SUPPRESS)
    add.set_defaults(handler=endpoint_add)
    changeable = ", ".join(sorted(flag.value for flag in CHANGEABLE_FLAGS))
    for name, handler, grammar, text in (
        ("change", endpoint_change, CHANGE_GRAMMAR,
         f"set or clear {changeable}; the other flags stay"),
        ("delete", endpoint_delete, DELETE_GRAMMAR, "remove an endpoint by id or address"),
    ):  # fmt: skip
        action = add_verb(actions, name, text, usage=f"%(prog)s {grammar} [--json]")
        action.add_argument("words", nargs="+", metavar=grammar, help=argparse.SUPPRESS)
        action.set_defaults(handler=handler)
    add_verb(actions, "show", "list endpoints").set_defaults(handler=endpoint_show)
    add_verb(actions, "flush", "remove every endpoint").set_defaults(handler=endpoint_flush)

    limits = add_verb(objects, "limits", "ip mptcp limits")
    limits.set_defaults(handler=limits_show)
    limit_actions = limits.add_subparsers(dest="limits_action", metavar="ACTION")
    limit_set = add_verb(
        limit_actions, "set", "set the limits; a limit not given stays", runtime=True,
        usage=f"%(prog)s {LIMITS_GRAMMAR} [--runtime] [--json]",
        epilog="subflows: extra subflows per connection; add_addr_accepted: ADD_ADDRs "
        f"accepted per connection; each 0..{MAX_LIMIT}.",
    )  # fmt: skip
    limit_set.add_argument("words", nargs="+", metavar="LIMIT N", help=argparse.SUPPRESS)
    limit_set.set_defaults(handler=limits_set)
    add_verb(limit_actions, "show", "show the limits").set_defaults(handler=limits_show)

    add_verb(objects, "monitor", "print path-manager events (ip mptcp monitor)").set_defaults(
        handler=monitor
    )
    add_verb(objects, "show", "connections and their subflows (ss -M)").set_defaults(handler=show)
    # `enable` before `enabled`, or the full word `enable` would select `enabled` (it begins it)
    for name, value in (("enable", True), ("disable", False)):
        add_verb(
            objects, name, f"set net.mptcp.enabled to {int(value)}", runtime=True
        ).set_defaults(handler=enabled, value=value)
    switch = add_verb(objects, "enabled", "show or set net.mptcp.enabled", runtime=True)
    switch.add_argument("value", nargs="?", choices=("yes", "no"))
    switch.set_defaults(handler=enabled)
    mptcp_app.register(objects)
