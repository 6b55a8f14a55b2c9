"""``netpathctl mptcp app``: services started under ``netpathctl run``, and who uses MPTCP.

``enable``/``disable``/``list`` are the daemon's EnableApp/DisableApp/ListApps (mptcpd's
``mptcpize enable|disable UNIT``, done with a systemd drop-in).  ``status`` is the guide's
verification step (``ss -nti`` showing ``tcp-ulp-mptcp``) per process: which processes hold
MPTCP connections now, plus whether system-wide BPF mode could work on this kernel.
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
    text = f"System-wide BPF mode: {mode}\n"
    if owners:
        rows = [(o["pid"], o["command"], o["connections"]) for o in owners]
        text += table(("PID", "COMMAND", "MPTCP-CONNECTIONS"), rows)
    else:
        text += "No process holds an MPTCP connection."
    emit(args, {"system_wide_mode": mode, "processes": owners}, text)


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
    add_verb(actions, "status", "processes with MPTCP connections, BPF mode").set_defaults(
        handler=app_status
    )
