"""``netpathctl mptcp app``: services started under ``netpathctl run``, and who uses MPTCP.

``enable``/``disable``/``list`` are the daemon's EnableApp/DisableApp/ListApps (mptcpd's
``mptcpize enable|disable UNIT``, done with a systemd drop-in).  ``register`` is what that
drop-in runs as ``ExecStartPre=+`` when the BPF backend serves the unit.  ``status`` is the
guide's verification step (``ss -nti`` showing ``tcp-ulp-mptcp``) per process: which processes
hold MPTCP connections now, the backend of each enabled unit and the BPF program's counters.
``netpathctl mptcp system-wide on|off`` is the guide's system-wide procedure without SystemTap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from netpathd.ctl.cli import Verbs, add_verb, emit, table, unwrap

if TYPE_CHECKING:
    from netpathd.ctl.client import Client

MPTCP = "org.netpathd1.Mptcp"


async def app_enable(client: Client, args: argparse.Namespace) -> None:
    await client.call(MPTCP, "EnableApp", "s", [args.unit])
    text = f"MPTCP enabled for {args.unit}: applies at its next start (systemctl restart)"
    emit(args, {"unit": args.unit, "enabled": True}, text)


async def app_disable(client: Client, args: argparse.Namespace) -> None:
    await client.call(MPTCP, "DisableApp", "s", [args.unit])
    text = f"MPTCP disabled for {args.unit}: applies at its next start (systemctl restart)"
    emit(args, {"unit": args.unit, "enabled": False}, text)


async def app_list(client: Client, args: argparse.Namespace) -> None:
    (units,) = await client.call(MPTCP, "ListApps")
    emit(args, units, "\n".join(units))


async def app_register(client: Client, args: argparse.Namespace) -> None:
    (unit,) = await client.call(MPTCP, "RegisterApp")
    emit(args, {"unit": unit}, f"MPTCP for new TCP sockets of {unit}")


async def system_wide(client: Client, args: argparse.Namespace) -> None:
    if args.value is not None:
        from dbus_fast import Variant  # noqa: PLC0415

        await client.set_property(MPTCP, "SystemWide", Variant("b", args.value == "on"))
        return
    values = unwrap(await client.get_all(MPTCP))
    data = {
        "system_wide": values.get("SystemWide", False),
        "exclude": values.get("SystemWideExclude", []),
        "include": values.get("SystemWideInclude", []),
        "backend": values.get("TcpToMptcpBackend", "unknown"),
        "stats": values.get("TcpToMptcpStats", {}),
    }
    stats = data["stats"]
    text = (
        f"System-wide: {'on' if data['system_wide'] else 'off'}\n"
        f"Excluded: {' '.join(data['exclude']) or '-'}\n"
        f"Included: {' '.join(data['include']) or '-'}\n"
        f"Backend: {data['backend']}\n"
        f"TCP sockets seen: {stats.get('seen', 0)}, made MPTCP: {stats.get('converted', 0)}"
    )
    emit(args, data, text)


def processes(connections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per process: pid, command and how many MPTCP connections it holds."""
    by_pid: dict[int, dict[str, Any]] = {}
    for conn in connections:
        for pid, comm in conn.get("processes", []):
            entry = by_pid.setdefault(pid, {"pid": pid, "command": comm, "connections": 0})
            entry["connections"] += 1
    return [by_pid[pid] for pid in sorted(by_pid)]


async def app_status(client: Client, args: argparse.Namespace) -> None:
    values = await client.get_all(MPTCP)
    (connections,) = await client.call(MPTCP, "GetConnections")
    owners = processes(unwrap(connections))
    mode = values.get("SystemWideMode", "unknown")
    (backends,) = await client.call(MPTCP, "ListAppBackends")
    text = f"System-wide BPF mode: {mode}\n"
    if backends:
        text += table(("UNIT", "BACKEND"), sorted(backends.items()))
        text += "\n(running services keep their existing sockets until restarted)\n"
    if owners:
        rows = [(o["pid"], o["command"], o["connections"]) for o in owners]
        text += table(("PID", "COMMAND", "MPTCP-CONNECTIONS"), rows)
    else:
        text += "No process holds an MPTCP connection."
    emit(args, {"system_wide_mode": mode, "apps": backends, "processes": owners}, text)


def register(objects: Verbs) -> None:
    app = add_verb(objects, "app", "services run under netpathctl run; MPTCP users")
    app.set_defaults(handler=app_status)
    actions = app.add_subparsers(dest="app_action", metavar="ACTION")
    for name, handler, text in (
        ("enable", app_enable, "start UNIT under netpathctl run (systemd drop-in)"),
        ("disable", app_disable, "remove that drop-in"),
    ):
        action = add_verb(actions, name, text)
        action.add_argument("unit", metavar="UNIT")
        action.set_defaults(handler=handler)
    add_verb(actions, "list", "units enabled").set_defaults(handler=app_list)
    add_verb(actions, "register", "(ExecStartPre=) list this unit's cgroup for BPF").set_defaults(
        handler=app_register
    )
    add_verb(actions, "status", "processes with MPTCP connections, BPF mode").set_defaults(
        handler=app_status
    )
    switch = add_verb(objects, "system-wide", "show or set MPTCP for every TCP socket (BPF)")
    switch.add_argument("value", nargs="?", choices=("on", "off"))
    switch.set_defaults(handler=system_wide)
