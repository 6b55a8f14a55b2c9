"""The scope → map contents of the TCP → MPTCP program, and the change between two."""

from __future__ import annotations

import pytest

from netpathd.errors import InvalidArgument
from netpathd.model.tcp_to_mptcp import check_entries, check_entry
from netpathd.model.tcp_to_mptcp_maps import (
    CONVERT,
    LEAVE,
    NOTHING_IN_SCOPE,
    MapContents,
    change,
    contents,
)


def test_system_wide_converts_by_default_and_leaves_the_excluded() -> None:
    assert contents(True, [7], [5, 6]) == MapContents(CONVERT, {5: LEAVE, 6: LEAVE})


def test_selected_cgroups_leave_by_default_and_exclusions_still_win() -> None:
    assert contents(False, [7, 8], [8, 9]) == MapContents(LEAVE, {7: CONVERT, 8: LEAVE, 9: LEAVE})


def test_nothing_included_is_nothing_in_scope() -> None:
    assert contents(False, [], [9]) == MapContents(NOTHING_IN_SCOPE)
    assert contents(False, [9], [9]) == MapContents(NOTHING_IN_SCOPE)


def test_change_is_minimal_and_idempotent() -> None:
    before = MapContents(LEAVE, {7: CONVERT, 8: CONVERT})
    after = MapContents(CONVERT, {8: LEAVE})
    step = change(before, after)
    assert (step.default, dict(step.put), step.delete) == (CONVERT, {8: LEAVE}, frozenset({7}))
    assert not change(after, after)


@pytest.mark.parametrize(
    "entry", ["sshd.service", "getty@tty1.service", "user.slice", "session-2.scope", "/", "/a/b"]
)
def test_units_and_cgroup_paths_are_entries(entry: str) -> None:
    assert check_entry(entry) == entry


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("sshd", "neither a unit"),
        ("foo.socket", "neither a unit"),
        ("a/b.service", "neither a unit"),
        ("/a/../b", "not a normalised cgroup path"),
        ("/a//b", "not a normalised cgroup path"),
        ("/a/..", "not a normalised cgroup path"),
        ("", "neither a unit"),
    ],
)
def test_bad_entries_are_refused_with_a_reason(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_entry(entry)


def test_entries_lose_duplicates_and_keep_order() -> None:
    assert check_entries(["b.service", "/x/", "b.service", "a.slice"]) == (
        "b.service", "/x", "a.slice",
    )  # fmt: skip
