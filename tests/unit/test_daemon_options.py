"""The daemon's usual command lines are read without argparse, exactly as argparse reads them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from netpathd.command_line import (
    BUS_ADDRESS_ENV,
    VALUE_OPTIONS,
    build_parser,
    parse_options,
    parsed_options,
    usual_options,
)

ROOT = Path(__file__).resolve().parents[2]

USUAL = [
    [],
    ["--resolv-conf=/run/netpathd/resolv.conf"],
    ["--bus-address=unix:path=/tmp/bus", "--config-dir=/c", "--state-dir=/s", "--runtime-dir=/r"],
    ["--config-dir", "/c", "--state-dir", "/s", "--resolv-conf", "/etc/resolv.conf"],
    ["--log-level=debug", "--log-level", "error"],  # the last one counts
    ["--systemd-dir=/etc/systemd/system", "--bpf-pin=/sys/fs/bpf/netpathd"],
    ["--bus-address=unix:path=/a,guid=b=c"],  # only the first "=" separates
    ["--config-dir=-x"],  # a value after "=" may start with "-"
    ["--config-dir="],
    ["--config-dir", ""],
    ["--config-dir", "a b"],
    ["--bus-address="],
]

UNUSUAL = [
    ["--help"],
    ["-h"],
    ["--version"],
    ["--conf=/c"],  # an abbreviation
    ["--config-dir"],  # no value
    ["--config-dir", "--state-dir=/s"],
    ["--config-dir", "-1"],  # argparse takes it as a negative number
    ["--log-level=verbose"],
    ["--"],
    ["extra"],
    ["--unknown=1"],
    ["-x"],
]


def test_the_units_command_line_is_usual() -> None:
    unit = (ROOT / "systemd" / "netpathd.service").read_text()
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))[1:]
    assert usual_options(argv) == parsed_options(argv)


@pytest.mark.parametrize("argv", USUAL, ids=" ".join)
def test_a_usual_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    assert usual_options(argv) is not None
    assert usual_options(argv) == parsed_options(argv)


@pytest.mark.parametrize("address", [None, "", "unix:path=/run/bus"])
def test_the_bus_address_defaults_to_the_environment(
    address: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if address is None:
        monkeypatch.delenv(BUS_ADDRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(BUS_ADDRESS_ENV, address)
    assert usual_options([]) == parsed_options([])


@pytest.mark.parametrize("argv", UNUSUAL, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert usual_options(argv) is None


def test_parse_options_still_refuses_what_argparse_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        parse_options(["--log-level=verbose"])
    assert refused.value.code == 2
    assert "invalid choice: 'verbose'" in capsys.readouterr().err


def test_the_usual_start_imports_no_argparse() -> None:
    """argparse with gettext (and locale, which asyncio loads anyway) is about 2 ms."""
    script = (
        "import sys\nfrom netpathd.command_line import parse_options\n"
        "parse_options(['--resolv-conf=/run/netpathd/resolv.conf'])\n"
        "print(sorted({'argparse', 'gettext', 'locale'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split("\n")[0] == "[]"


def test_every_option_that_takes_a_value_is_read() -> None:
    parser = build_parser()
    with_value = {
        name
        for action in parser._actions  # argparse lists its options nowhere else
        if type(action).__name__ == "_StoreAction"  # not --help, --version
        for name in action.option_strings
    }
    assert with_value == VALUE_OPTIONS
