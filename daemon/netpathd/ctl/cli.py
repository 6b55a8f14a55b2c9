"""What every netpathctl verb shares: output (tables for people, JSON for scripts)
and the error for command lines that cannot become a call."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

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
