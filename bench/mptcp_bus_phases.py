"""netpathd with a clock around each phase of an endpoint add, for ``bench_mptcp_bus.py --phases``.

Not a benchmark itself: ``python bench/mptcp_bus_phases.py OUT DAEMON-ARGS...`` runs the
daemon as ``python -m netpathd DAEMON-ARGS...`` would, with ``perf_counter_ns`` around the
functions one ``AddEndpoint``/``AddEndpointRuntime`` passes through, and writes the median
of each phase (µs, over the adds served) to OUT as JSON when the daemon exits.  The names
wrapped are netpathd's own: when one is renamed, this fails loudly at start.
"""

from __future__ import annotations

import atexit
import functools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))

from dbus_fast import Message, MessageType

from netpathd import app, mptcp_manager
from netpathd.bus import flow_control, mptcp, polkit
from netpathd.files import mptcp_store
from netpathd.kernel import mptcp_pm

ADDS = frozenset({"AddEndpoint", "AddEndpointRuntime"})
now = time.perf_counter_ns
samples: dict[str, list[int]] = {}
serving: dict[str, int] = {}  # "call": when the add arrived, "returned": when it returned


def record(phase: str, started: int) -> None:
    if "call" in serving:
        samples.setdefault(phase, []).append(now() - started)


def timed_async(owner: Any, name: str, phase: str) -> None:
    inner: Callable[..., Awaitable[Any]] = getattr(owner, name)

    @functools.wraps(inner)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = now()
        try:
            return await inner(*args, **kwargs)
        finally:
            record(phase, started)

    setattr(owner, name, wrapper)


def timed(owner: Any, name: str, phase: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = now()
        try:
            return inner(*args, **kwargs)
        finally:
            record(phase, started)

    setattr(owner, name, wrapper)


def install() -> None:
    admit = flow_control.FlowControlledBus._admit
    send = flow_control.FlowControlledBus.send
    request = getattr(mptcp, "endpoint_request")  # noqa: B009 - not exported
    add = mptcp_manager.MptcpManager.add_endpoint

    def admitted(bus: Any, msg: Message) -> Any:
        if msg.message_type is MessageType.METHOD_CALL and msg.member in ADDS:
            serving["call"] = now()
        return admit(bus, msg)

    def arguments(*args: Any) -> Any:
        record("1 message read to handler started", serving.get("call", 0))
        started = now()
        try:
            return request(*args)
        finally:
            record("2 arguments validated", started)

    async def added(manager: Any, *args: Any, **kwargs: Any) -> int:
        new_id: int = await add(manager, *args, **kwargs)
        serving["returned"] = now()
        return new_id

    def sent(bus: Any, msg: Message) -> Any:
        started = now()
        if msg.message_type is not MessageType.METHOD_RETURN or "returned" not in serving:
            return send(bus, msg)
        record("9 handler returned to reply sent", serving.pop("returned"))
        future = send(bus, msg)
        record("a reply (and its signal) written", started)
        record("b total: message read to reply written", serving["call"])
        del serving["call"]
        return future

    patches = [
        (flow_control.FlowControlledBus, "_admit", admitted),
        (flow_control.FlowControlledBus, "send", sent),
        (mptcp, "endpoint_request", arguments),
        (mptcp_manager.MptcpManager, "add_endpoint", added),
    ]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    timed_async(polkit.Authorizer, "authorize", "3 authorized (uid 0)")
    timed(mptcp_store.MptcpStore, "desired", "4 configured ids checked")
    timed_async(mptcp_pm.MptcpPm, "list_endpoints", "5 GET_ADDR dump")
    timed(mptcp_store.MptcpStore, "record_add", "6 written ahead (record or state file)")
    timed_async(mptcp_pm.MptcpPm, "add_endpoint_and_list", "7 ADD_ADDR")
    timed(mptcp_manager.MptcpManager, "_notify", "8 PropertiesChanged built and queued")


def dump(out: Path) -> None:
    medians = {phase: statistics.median(values) / 1000 for phase, values in samples.items()}
    out.write_text(json.dumps(dict(sorted(medians.items()))))


if __name__ == "__main__":
    target = Path(sys.argv.pop(1))
    install()
    atexit.register(dump, target)
    raise SystemExit(app.main())
