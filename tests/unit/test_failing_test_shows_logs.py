"""A failing or interrupted test shows the stderr of the processes it started.

tests/support/daemon.py sends the daemon's (and resolved's) stderr to a file and, as a
pytest plugin, adds those files to a failing test's report; here a pytest run of its own
checks that, with a log file standing in for a daemon's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

INNER = """
from pathlib import Path

from tests.support.daemon import log_file


def test_inner(tmp_path: Path) -> None:
    with log_file(tmp_path, "netpathd") as stderr:
        stderr.write("netpathd: ERROR: the line a failing test must show\\n")
    {ending}
"""


def run_inner(tmp_path: Path, ending: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_inner.py"
    test.write_text(INNER.format(ending=ending))
    plugins = ["-p", "tests.support.daemon", "-p", "no:cacheprovider"]
    where = ["--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "base")]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, *where, str(test)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("ending", "status"),
    [("assert False", 1), ("raise KeyboardInterrupt", 2)],
    ids=["failed", "interrupted"],
)
def test_the_log_is_shown(tmp_path: Path, ending: str, status: int) -> None:
    result = run_inner(tmp_path, ending)
    assert result.returncode == status, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    assert "the line a failing test must show" in shown, shown
    assert "netpathd stderr (" in shown, shown


def test_a_passing_test_shows_nothing(tmp_path: Path) -> None:
    result = run_inner(tmp_path, "pass")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the line a failing test must show" not in result.stdout + result.stderr
