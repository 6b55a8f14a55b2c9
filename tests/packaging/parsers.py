"""What netpathd's and netpathctl's argparse parsers accept: every verb path and option."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from netpathd.app import build_parser as daemon_parser
from netpathd.ctl.main import build_parser as ctl_parser
from netpathd.ctl.run import build_parser as run_parser


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (verb path, parser) pair below and including ``parser``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def verbs() -> list[str]:
    return [" ".join(path) for path, _ in walk(ctl_parser()) if path]


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for _, sub in walk(parser)
        for action in sub._actions
        for option in action.option_strings
    }


def ctl_options() -> set[str]:
    # `netpathctl run` parses its own arguments (it must not load the D-Bus client).
    return options(ctl_parser()) | options(run_parser())


def daemon_options() -> set[str]:
    return options(daemon_parser())
