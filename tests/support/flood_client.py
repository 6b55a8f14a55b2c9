"""A D-Bus flood client: many calls in flight on several connections, every reply counted.

Run as a separate process (``python -m tests.support.flood_client``) so that a test can
start it as an unprivileged user with ``setpriv``. It speaks the wire protocol over asyncio
streams rather than through a bus library: a client that waits for its own socket to drain
cannot be the one that falls over, so only the daemon is under test. Prints one JSON object:
``{"replies": {"ok" or error name: count}, "unanswered": count}``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import struct
from collections import Counter

from dbus_fast import Message, MessageType
from dbus_fast._private.unmarshaller import Unmarshaller

DEST, PATH = "org.netpathd1", "/org/netpathd1"
FIXED_HEADER = 16


def flood_message(kind: str, serial: int) -> bytes:
    if kind == "ping":
        message = Message(
            destination=DEST, path=PATH, interface="org.freedesktop.DBus.Peer", member="Ping"
        )
    elif kind == "introspect":  # the largest reply anyone may ask for
        message = Message(
            destination=DEST,
            path=PATH,
            interface="org.freedesktop.DBus.Introspectable",
            member="Introspect",
        )
    else:
        message = Message(
            destination=DEST,
            path=PATH,
            interface="org.freedesktop.DBus.Properties",
            member="Get",
            signature="ss",
            body=["org.netpathd1.Manager", "Version"],
        )
    message.serial = serial
    return bytes(message._marshall(False))


def hello(serial: int) -> bytes:
    message = Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member="Hello",
        serial=serial,
    )
    return bytes(message._marshall(False))


async def read_message(reader: asyncio.StreamReader) -> Message:
    fixed = await reader.readexactly(FIXED_HEADER)
    order = "<" if fixed[0:1] == b"l" else ">"
    body_length, _, fields_length = struct.unpack(order + "III", fixed[4:16])
    padded = (fields_length + 7) & ~7
    rest = await reader.readexactly(padded + body_length)
    message = Unmarshaller(io.BytesIO(fixed + rest), negotiate_unix_fd=False).unmarshall()
    assert message is not None
    return message


async def connect(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
    line = await reader.readline()
    if not line.startswith(b"OK "):
        raise SystemExit(f"authentication refused: {line!r}")
    writer.write(b"BEGIN\r\n" + hello(1))
    while (await read_message(reader)).reply_serial != 1:
        pass
    return reader, writer


async def flood_one(path: str, kind: str, calls: int, in_flight: int, replies: Counter[str]) -> int:
    """Send ``calls`` calls, at most ``in_flight`` unanswered; return how many got no reply."""
    reader, writer = await connect(path)
    window = asyncio.Semaphore(in_flight)
    pending: set[int] = set()

    async def receive() -> None:
        while pending or not sent.is_set():
            message = await read_message(reader)
            if message.reply_serial not in pending:
                continue  # a signal, or the reply to Hello
            pending.discard(message.reply_serial)
            window.release()
            if message.message_type is MessageType.ERROR:
                replies[message.error_name or "error"] += 1
            else:
                replies["ok"] += 1

    sent = asyncio.Event()
    receiver = asyncio.create_task(receive())
    for serial in range(2, calls + 2):
        await window.acquire()
        pending.add(serial)
        writer.write(flood_message(kind, serial))
        await writer.drain()
    sent.set()
    await receiver
    writer.close()
    return len(pending)


async def flood(
    path: str, kind: str, connections: int, calls: int, in_flight: int
) -> dict[str, object]:
    replies: Counter[str] = Counter()
    per_connection = [calls // connections + (i < calls % connections) for i in range(connections)]
    results = await asyncio.gather(
        *(flood_one(path, kind, count, in_flight, replies) for count in per_connection),
        return_exceptions=True,
    )
    unanswered = sum(r if isinstance(r, int) else 0 for r in results)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"replies": dict(replies), "unanswered": unanswered, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True, help="the bus socket's path")
    parser.add_argument("--kind", choices=("ping", "get", "introspect"), default="ping")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--calls", type=int, default=20_000, help="in total, over all connections")
    parser.add_argument("--in-flight", type=int, default=400, help="per connection")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    async def bounded() -> dict[str, object]:
        async with asyncio.timeout(args.timeout):
            return await flood(args.socket, args.kind, args.connections, args.calls, args.in_flight)

    print(json.dumps(asyncio.run(bounded())))


if __name__ == "__main__":
    main()
