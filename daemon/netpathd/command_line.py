"""The daemon's command line: `Options`, read without argparse when it is the usual one.

argparse with gettext is about 1.5 ms of every start, for the fixed argv of the unit's
ExecStart=; `usual_options` reads such a command line as argparse would, and anything else
(--help, --version, abbreviations, errors) goes to argparse itself (`build_parser`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netpathd import __version__
from netpathd.model.settings import LOG_LEVELS

if TYPE_CHECKING:
    import argparse

BUS_ADDRESS_ENV = "NETPATHD_BUS_ADDRESS"
DEFAULT_CONFIG_DIR = Path("/etc/netpathd")
DEFAULT_STATE_DIR = Path("/var/lib/netpathd")
DEFAULT_RUNTIME_DIR = Path("/run/netpathd")
DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_SYSTEMD_DIR = Path("/etc/systemd/system")
# Every option that takes a value (build_parser): what usual_options reads without argparse.
VALUE_OPTIONS = frozenset(
    ("--bus-address", "--config-dir", "--state-dir", "--runtime-dir", "--resolv-conf",
     "--systemd-dir", "--bpf-pin", "--log-level")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, parsed: what one run of the daemon was asked to serve and where."""

    bus_address: str | None
    config_dir: Path
    state_dir: Path
    resolv_conf: Path
    log_level: str | None
    systemd_dir: Path = DEFAULT_SYSTEMD_DIR  # where EnableApp writes unit drop-ins
    bpf_pin: Path | None = None  # where the TCP->MPTCP program is pinned to outlive us
    runtime_dir: Path = DEFAULT_RUNTIME_DIR  # what describes the kernel; gone at reboot


def build_parser() -> argparse.ArgumentParser:
    """Separate from parse_options so that the man page test can read every option."""
    import argparse  # noqa: PLC0415 - see usual_options

    class CheckingFormatter(argparse.HelpFormatter):
        """What argparse formats with while the parser is built: a width of its own.

        add_argument() makes a formatter to check each option's metavar, and the default
        width (the terminal's) imports shutil, with zlib, bz2 and lzma: 1.5 ms, for a width
        the check never uses.  Help and usage messages get argparse's own again.
        """

        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=80)

    parser = argparse.ArgumentParser(
        prog="netpathd",
        description="Multipath TCP and DNS server ordering daemon (D-Bus name org.netpathd1).",
        formatter_class=CheckingFormatter,
    )
    parser.add_argument(
        "--bus-address",
        default=os.environ.get(BUS_ADDRESS_ENV) or None,
        help=f"D-Bus address to serve on (default: ${BUS_ADDRESS_ENV}, else the system bus)",
    )
    parser.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--runtime-dir",
        type=Path,
        default=DEFAULT_RUNTIME_DIR,
        help="where the record of what netpathd put into the kernel lives (tmpfs: it must "
        "not outlive a reboot, which empties the kernel's tables)",
    )
    parser.add_argument("--resolv-conf", type=Path, default=DEFAULT_RESOLV_CONF)
    parser.add_argument(
        "--systemd-dir",
        type=Path,
        default=DEFAULT_SYSTEMD_DIR,
        help="systemd unit directory for the drop-ins of EnableApp (mptcp app enable)",
    )
    parser.add_argument(
        "--bpf-pin",
        type=Path,
        metavar="DIR",
        help="pin the TCP->MPTCP BPF program in DIR on bpffs (e.g. /sys/fs/bpf/netpathd), so "
        "SystemWide survives a daemon restart; default: held, gone with the daemon",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="overrides log-level of netpathd.conf"
    )
    parser.add_argument("--version", action="version", version=f"netpathd {__version__}")
    parser.formatter_class = argparse.HelpFormatter
    return parser


def parse_options(argv: list[str]) -> Options:
    """The command line as argparse reads it; argparse answers --help and refuses errors."""
    options = usual_options(argv)
    return parsed_options(argv) if options is None else options


def parsed_options(argv: list[str]) -> Options:
    args = build_parser().parse_args(argv)
    return Options(
        bus_address=args.bus_address,
        config_dir=args.config_dir,
        state_dir=args.state_dir,
        resolv_conf=args.resolv_conf,
        log_level=args.log_level,
        systemd_dir=args.systemd_dir,
        bpf_pin=args.bpf_pin,
        runtime_dir=args.runtime_dir,
    )


def usual_options(argv: list[str]) -> Options | None:
    """What argparse would read from a usual command line, or None for any other.

    argparse with gettext is about 1.5 ms of every start, for the fixed argv of the
    unit's ExecStart=.  Usual: every word an option that takes a value, spelled out in full,
    as ``--name=value`` or ``--name value`` (a value that does not start with "-"), with a
    known --log-level.  Anything else (abbreviations, --help, --version, errors) goes to
    argparse, as do its messages; tests/unit/test_daemon_options.py holds the two equal.
    """
    values: dict[str, str] = {}
    words = iter(argv)
    for word in words:
        name, equals, value = word.partition("=")
        if name not in VALUE_OPTIONS:
            return None
        if not equals:
            following = next(words, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        values[name] = value
    if values.get("--log-level", LOG_LEVELS[0]) not in LOG_LEVELS:
        return None
    bpf_pin = values.get("--bpf-pin")
    return Options(
        bus_address=values.get("--bus-address", os.environ.get(BUS_ADDRESS_ENV) or None),
        config_dir=Path(values.get("--config-dir", DEFAULT_CONFIG_DIR)),
        state_dir=Path(values.get("--state-dir", DEFAULT_STATE_DIR)),
        resolv_conf=Path(values.get("--resolv-conf", DEFAULT_RESOLV_CONF)),
        log_level=values.get("--log-level"),
        systemd_dir=Path(values.get("--systemd-dir", DEFAULT_SYSTEMD_DIR)),
        bpf_pin=None if bpf_pin is None else Path(bpf_pin),
        runtime_dir=Path(values.get("--runtime-dir", DEFAULT_RUNTIME_DIR)),
    )
