"""What every netpathctl verb shares: how a verb is added to the table, output (tables
for people, JSON for scripts) and the error for command lines that cannot become a call.

JSON keys are snake_case (``add_addr_accepted``, ``log_level``), like ``ip -j``; the one
exception is a DNS connection's settings, keyed by their nmcli names (``ipv4.dns-priority``),
the very keys ``dns set`` takes.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

from netpathd.errors import InvalidArgument

Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_verb(
    verbs: Verbs, name: str, help: str, *, runtime: bool = False, **kwargs: Any
) -> argparse.ArgumentParser:
    """A verb with --json (and, if it can skip persisting, --runtime) in its --help.

    ``netpathd.ctl.verbs.normalize`` moves both flags to the front of the line, where the top-level
    parser reads them; here they only document where they apply.
    """
    kwargs.setdefault("description", help)
    parser = verbs.add_parser(name, help=help, **kwargs)
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    if runtime:
        parser.add_argument(
            "--runtime", action="store_true", default=argparse.SUPPRESS,
            help="change the running state only: not persisted, gone at restart",
        )  # fmt: skip
        parser.set_defaults(accepts_runtime=True)
    return parser


def snake_case(name: str) -> str:
    """A D-Bus property name or an Explain key as a JSON key: ``LogLevel`` -> ``log_level``,
    ``priority-source`` -> ``priority_source``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("-", "_")


def snake_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {snake_case(name): value for name, value in values.items()}


def unwrap(value: Any) -> Any:
    """Variants (nested) to plain JSON-able values."""
    from dbus_fast import Variant  # noqa: PLC0415

    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


@contextmanager
def checked_here() -> Iterator[None]:
    """Run one of the daemon's own checks in the CLI, for values D-Bus cannot carry
    (``-1`` as a ``u``): the user reads the daemon's words, nothing is sent."""
    try:
        yield
    except InvalidArgument as error:
        raise UsageError(error.message) from None


CALL_TIMEOUT = 30.0  # seconds netpathctl waits for the bus and for each answer (--timeout)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with --json, else the human ``text``."""
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text:
        print(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns like `ip -br` and `resolvectl`; the last column is not padded."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(
            cell if column == len(headers) - 1 else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ).rstrip()
        for row in cells
    )


class UsageError(Exception):
    """A command line that cannot be turned into a call; nothing was sent."""
