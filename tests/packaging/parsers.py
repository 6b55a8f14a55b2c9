"""What netpathd's and netpathctl's parsers accept, and what bash completion offers for them."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from netpathd.command_line import build_parser as daemon_parser
from netpathd.ctl.main import build_parser as ctl_parser
from netpathd.ctl.resolvconf import LONG_OPTIONS, SHORT_OPTIONS
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


def resolvconf_options() -> set[str]:
    """`netpathctl resolvconf` reads its options with getopt, as resolvconf does."""
    short = {f"-{letter}" for letter in SHORT_OPTIONS.replace(":", "")}
    return short | {f"--{name.rstrip('=')}" for name in LONG_OPTIONS}


def ctl_options() -> set[str]:
    # `netpathctl run` and `resolvconf` parse their own arguments (neither may load more).
    return options(ctl_parser()) | options(run_parser()) | resolvconf_options()


def daemon_options() -> set[str]:
    return options(daemon_parser())


def bash_complete(script: Path, words: list[str]) -> list[str]:
    """What bash offers after ``words`` (the last one being the word being completed)."""
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_shtab_netpathctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.split()
