"""Runs one netpathd MPTCP adapter call in the namespace it is started in and prints JSON.

The adapters act on the current network namespace and pytest must never
leave its own, so tests start this with ``ip netns exec NS python3 -m
tests.integration.mptcp_driver VERB [JSON-ARGS]``.  Success prints the
result; a netpathd error prints ``{"error": "<dbus name>", "message": ...}``
and exits 1.  ``events`` prints "ready" once subscribed, then one JSON line
per event until it is terminated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "daemon"))

from pyroute2.netlink.generic.mptcp import MPTCP_PM_CMD_DEL_ADDR, MPTCP_PM_CMD_FLUSH_ADDRS

from netpathd.errors import NetpathdError
from netpathd.kernel import mptcp_diag, sysctl
from netpathd.kernel.mptcp_events import MptcpEvents
from netpathd.kernel.mptcp_pm import MptcpPm
from netpathd.model.mptcp import Endpoint, Limits, parse_address, parse_flags


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple | frozenset):
        items = [to_json(item) for item in value]
        return sorted(items) if isinstance(value, frozenset) else items
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, enum.Enum | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value.value if isinstance(value, enum.Enum) else str(value)
    return value


def endpoint(args: dict[str, Any]) -> Endpoint:
    return Endpoint(
        id=args.get("id", 0),
        address=parse_address(args["address"]),
        port=args.get("port", 0),
        interface=args.get("interface", ""),
        flags=parse_flags(args.get("flags", [])),
    )


async def pm_call(verb: str, args: dict[str, Any]) -> Any:
    async with MptcpPm() as pm:
        calls = {
            "get_limits": pm.get_limits,
            "set_limits": lambda: pm.set_limits(Limits(**args)),
            "list": pm.list_endpoints,
            "add": lambda: pm.add_endpoint(endpoint(args)),
            "remove": lambda: pm.remove_endpoint(args["id"]),
            "set_flags": lambda: pm.set_endpoint_flags(args["id"], parse_flags(args["flags"])),
            "flush": pm.flush_endpoints,
            "add_after_reading": lambda: add_after_reading(pm, endpoint(args)),
        }
        return await calls[verb]()


async def add_after_reading(pm: MptcpPm, new: Endpoint) -> dict[str, Any]:
    """Add ``new`` with the table read just before; what it returned, what the kernel
    dumps right after, and how many requests the add itself sent."""
    before = await pm.list_endpoints()
    transport = pm._open_transport()
    sent: list[int] = []
    loop_request = transport.request_body

    async def counted(body: bytes, *rest: Any, **options: Any) -> Any:
        sent.append(body[0])
        return await loop_request(body, *rest, **options)

    transport.request_body = counted  # type: ignore[method-assign]
    new_id, table = await pm.add_endpoint_and_list(new, before)
    transport.request_body = loop_request  # type: ignore[method-assign]
    return {"id": new_id, "table": table, "dumped": await pm.list_endpoints(), "sent": sent}


async def sleeping_requests_on_loop(args: dict[str, Any]) -> list[int]:
    """Add ``args["addresses"]``, remove the first, flush the rest; return the genetlink
    commands among those that the event loop itself sent (a kernel call that sleeps, like
    DEL_ADDR in synchronize_rcu(), stalls the whole daemon while it runs on the loop)."""
    sleeping = {MPTCP_PM_CMD_DEL_ADDR, MPTCP_PM_CMD_FLUSH_ADDRS}
    on_loop: list[int] = []
    async with MptcpPm() as pm:
        for address in args["addresses"]:
            await pm.add_endpoint(endpoint({"address": address, "flags": ["subflow"]}))
        transport = pm._open_transport()
        loop_request = transport.request_body  # every request sent from the loop

        async def watched(body: bytes, *rest: Any, **options: Any) -> Any:
            if body[0] in sleeping:  # the genetlink header's cmd
                on_loop.append(body[0])
            return await loop_request(body, *rest, **options)

        transport.request_body = watched  # type: ignore[method-assign]
        first = next(e for e in await pm.list_endpoints() if str(e.address) == args["addresses"][0])
        await pm.remove_endpoint(first.id)
        await pm.flush_endpoints()
    return on_loop


async def events(args: dict[str, Any]) -> None:
    """Print events.  ``pause`` blocks the whole loop for that long after "ready": pyroute2's
    transport reads whenever the loop runs, so only a starved loop lets the kernel overrun."""
    async with MptcpEvents(rcvbuf=args.get("rcvbuf", 1 << 20)) as stream:
        print("ready", flush=True)
        time.sleep(args.get("pause", 0))  # noqa: ASYNC251 - starving the loop is the point
        async for event in stream:
            print(json.dumps(to_json(event)), flush=True)


async def main(verb: str, args: dict[str, Any]) -> Any:
    if verb == "events":
        return await events(args)
    if verb == "sleeping_requests_on_loop":
        return await sleeping_requests_on_loop(args)
    if verb == "connections":
        return await mptcp_diag.list_connections()
    if verb == "sysctl":
        if "enabled" in args:
            sysctl.set_mptcp_enabled(args["enabled"])
        if "rp_filter" in args:
            sysctl.set_rp_filter(args["ifname"], sysctl.RpFilter(args["rp_filter"]))
        result: dict[str, Any] = {"enabled": sysctl.get_mptcp_enabled()}
        if "ifname" in args:
            result["rp_filter"] = int(sysctl.get_rp_filter(args["ifname"]))
        return result
    return await pm_call(verb, args)


if __name__ == "__main__":
    verb = sys.argv[1]
    call_args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        print(json.dumps(to_json(asyncio.run(main(verb, call_args)))))
    except NetpathdError as error:
        print(json.dumps({"error": error.dbus_name, "message": error.message}))
        sys.exit(1)
