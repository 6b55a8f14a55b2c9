"""The "did you mean" of a refusal that names an unknown word (a verb, key, type or flag)."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest known word, else nothing."""
    import difflib  # noqa: PLC0415 - only a refusal needs it, not the daemon's start

    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
