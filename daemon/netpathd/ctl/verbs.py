"""How netpathctl reads a command line before argparse sees it, the way ``ip`` reads one.

- Verbs abbreviate by iproute2's rule (``matches()`` in its ``lib/utils.c``, used by
  ``do_mptcp()`` in ``ip/ipmptcp.c``): a non-empty prefix selects the first verb of the
  table, in the table's order, that it begins; so ``e`` is ``endpoint`` because ``endpoint``
  comes first, and the order of each table is part of the grammar.
- A word that selects no verb is refused with the closest verb ("did you mean").
- ``--json`` and ``--runtime`` may stand anywhere before a ``--``: they are moved to the
  front, so a verb's own words never have to make room for them (``dns set tmp --runtime
  ...`` as well as ``dns set --runtime tmp ...``).  ``run``'s command is left alone.

Only the verbs are matched here; the words after the last verb belong to that verb.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from netpathd.ctl.cli import UsageError
from netpathd.model.hints import did_you_mean

ANYWHERE_FLAGS = ("--json", "--runtime")


def matches(word: str, name: str) -> bool:
    """iproute2's ``matches(prefix, string) == 0``: ``word`` is a non-empty prefix of ``name``."""
    return bool(word) and name.startswith(word)


def first_match(word: str, names: Sequence[str]) -> str | None:
    return next((name for name in names if matches(word, name)), None)


def _sub_verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _takes_value(parser: argparse.ArgumentParser, word: str) -> bool:
    action = parser._option_string_actions.get(word)
    return action is not None and action.nargs != 0


def verbs_where(parser: argparse.ArgumentParser, default: str) -> list[str]:
    """The verbs (as typed, ``mptcp endpoint add``) whose parser sets ``default`` true."""
    found = []
    for name, sub in _sub_verbs(parser).items():
        if sub.get_default(default):
            found.append(name)
        found += [f"{name} {below}" for below in verbs_where(sub, default)]
    return found


def _passes_through(parser: argparse.ArgumentParser) -> bool:
    """A verb whose words are another program's command line (``run``) is left alone."""
    return any(action.nargs == argparse.REMAINDER for action in parser._actions)


def normalize(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with verbs spelled out and the anywhere-flags first; raises UsageError."""
    flags: list[str] = []
    words: list[str] = []
    current: argparse.ArgumentParser | None = parser
    path = [parser.prog]
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "--":
            words += argv[index - 1 :]
            break
        if word in ANYWHERE_FLAGS:
            flags.append(word)
            continue
        words.append(word)
        if current is None:
            continue
        if word.startswith("-"):
            if _takes_value(current, word) and index < len(argv):
                words.append(argv[index])
                index += 1
            continue
        verbs = _sub_verbs(current)
        if not verbs:
            current = None  # the verb's own words from here on
            continue
        name = first_match(word, list(verbs))
        if name is None:
            raise UsageError(
                f"unknown command {word!r} for {' '.join(path)!r} "
                f"(one of: {', '.join(verbs)}){did_you_mean(word, verbs)}"
            )
        words[-1] = name
        path.append(name)
        current = verbs[name]
        if _passes_through(current):
            words += argv[index:]
            break
    return flags + words
