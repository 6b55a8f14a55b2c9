"""`netpathctl run` reads its usual command lines without argparse (which costs every wrapped
program a few milliseconds of start-up) and must read them exactly as argparse does."""

from __future__ import annotations

import pytest

from netpathd.ctl import run

COMMON = [
    ["--", "true"],
    ["true"],
    ["curl", "-v", "https://example.org"],
    ["-v", "--", "curl", "-v"],
    ["--verbose", "--", "sh", "-c", "exit 3"],
    ["-v", "curl"],
    ["-v", "-v", "--", "x"],
    ["--", "-v"],
    ["--", "--", "x"],
    ["curl", "--", "x"],
]
UNUSUAL = [["--verb", "--", "x"], ["-vv", "--", "x"], ["-v"], ["--"], [], ["-1"], ["-"]]


def argparse_reading(argv: list[str]) -> tuple[list[str], bool] | str:
    try:
        return run.parse_with_argparse(argv)
    except SystemExit as exit_:
        return f"exit {exit_.code}"


@pytest.mark.parametrize("argv", COMMON)
def test_the_usual_command_lines_skip_argparse(argv: list[str]) -> None:
    assert run.plain_arguments(argv) == argparse_reading(argv)


@pytest.mark.parametrize("argv", UNUSUAL)
def test_everything_else_goes_to_argparse(argv: list[str]) -> None:
    assert run.plain_arguments(argv) is None


@pytest.mark.parametrize("argv", [*COMMON, *UNUSUAL, ["-h"], ["--help", "--", "x"]])
def test_the_verb_reads_what_argparse_reads(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        ours: tuple[list[str], bool] | str = run.parse(argv)
    except SystemExit as exit_:
        ours = f"exit {exit_.code}"
    ours_output = capsys.readouterr()
    assert ours == argparse_reading(argv)
    assert capsys.readouterr() == ours_output
