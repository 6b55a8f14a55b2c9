"""Per-service MPTCP: a systemd drop-in that starts a unit under ``netpathctl run``, or (when
the kernel runs the TCP->MPTCP BPF program) one that registers the unit's cgroup with
``ExecStartPre=+netpathctl mptcp app register`` (see tcp_to_mptcp.py).

mptcpd's ``mptcpize enable UNIT`` (src/mptcpize.c ``unit_update()``) rewrites the unit file
itself, adding ``Environment=LD_PRELOAD=libmptcpwrap.so``, then runs ``systemctl
daemon-reload``.  That edits a file the package manager owns (the next update reverts it, or
conflicts), and LD_PRELOAD misses static binaries and Go.  netpathd writes a drop-in instead,
``SYSTEMD_DIR/UNIT.d/50-netpathd-mptcp.conf``, which resets ``ExecStart=`` and repeats each
original command behind ``netpathctl run --`` (seccomp, see ctl/mptcpize.py): the unit file is
untouched, ``systemctl cat`` shows the change, and removing the drop-in undoes it exactly.

The original commands come from systemd, not from parsing unit files: the unit's
``ExecStart`` property already merges the fragment, every other drop-in and resolved
specifiers (systemd src/core/dbus-execute.c ``bus_property_get_exec_command_list``).
Prefixes survive as far as systemd reports them: ``-`` (ignore failure) is the struct's
boolean in ``ExecStart``; ``+ ! !! :`` are only visible in ``ExecStartEx`` (systemd 243+,
flags as words), read when present.  They are written in front of ``netpathctl`` and so cover
the command too, because netpathctl runs it as its own child with its own credentials.
``@`` (argv[0] differs from the path) cannot be kept: netpathctl executes the path with argv[0]
set to the path; the loss is logged.

This module is bus-free: `SystemdUnits` is the narrow view of systemd it needs; the D-Bus
adapter is ``bus/systemd_client.py``.  Order of every change (nothing half-done): ask systemd
first, write the drop-in only once systemd answered, ``Reload()``, and take the file change
back when the reload fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from netpathd.errors import AlreadyExists, Failed, InvalidArgument, NetpathdError, NotFound
from netpathd.files.atomic import write_atomic

log = logging.getLogger(__name__)

DROP_IN_NAME = "50-netpathd-mptcp.conf"
NETPATHCTL = "/usr/bin/netpathctl"
HEADER = "# Managed by netpathd (netpathctl mptcp app enable/disable): do not edit.\n"
# systemd src/basic/unit-name.c: letters, digits and ":-_.\\" plus one "@" for instances
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]+)?\.service")
_UNIT_NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """One ExecStart= line as systemd holds it: path, argv and prefix flags."""

    path: str
    argv: tuple[str, ...]
    flags: frozenset[str] = frozenset()  # ExecStartEx words; "ignore-failure" from ExecStart


@dataclass(frozen=True, slots=True)
class ServiceUnit:
    """A loaded systemd service, as much of it as a drop-in needs."""

    name: str
    fragment_path: str
    exec_start: tuple[ExecCommand, ...]


class SystemdUnits(Protocol):
    """What netpathd asks of systemd (org.freedesktop.systemd1)."""

    async def service(self, name: str) -> ServiceUnit:
        """The loaded unit; NotFound when it does not exist, NotSupported without systemd."""

    async def reload(self) -> None:
        """Manager.Reload(): make systemd read the drop-ins again."""


def check_unit_name(name: str) -> str:
    """A service name safe to use as a path component, or InvalidArgument saying why."""
    if not name or len(name) > _UNIT_NAME_MAX or "/" in name or name.startswith("."):
        raise InvalidArgument(f"{name!r} is not a unit name")
    if not name.endswith(".service"):
        kind = name.rpartition(".")[2] if "." in name else "unit without a type suffix"
        raise InvalidArgument(f"{name} is not a service ({kind}): only services run commands")
    if name.endswith("@.service"):
        raise InvalidArgument(f"{name} is a template: enable an instance such as NAME@x.service")
    if not _UNIT_NAME.fullmatch(name):
        raise InvalidArgument(f"{name!r} is not a valid service name")
    return name


def _quote(word: str) -> str:
    """``word`` as one unit-file argument: C-escaped in double quotes, ``%`` doubled.

    Specifiers are already resolved in what systemd reports, so a ``%`` left is literal;
    ``$VAR`` is kept as is because systemd expands it only at exec time (unless ``:``).
    """
    out = []
    for char in word:
        if char in '\\"':
            out.append("\\" + char)
        elif char == "%":
            out.append("%%")
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _prefix(flags: frozenset[str]) -> str:
    """The ExecStart= prefix for systemd's flag words ("ambient" is "!!", which implies "!")."""
    prefix = "-" if "ignore-failure" in flags else ""
    prefix += "+" if "privileged" in flags else ""
    if "ambient" in flags:
        prefix += "!!"
    elif "no-setuid" in flags:
        prefix += "!"
    return prefix + (":" if "no-env-expand" in flags else "")


def render_drop_in(unit: ServiceUnit, netpathctl: str = NETPATHCTL) -> str:
    """The drop-in text for ``unit``: ``ExecStart=`` reset, then each command wrapped."""
    if not unit.exec_start:
        raise InvalidArgument(f"{unit.name} has no ExecStart= command to run over MPTCP")
    lines = [HEADER, f"# Unit file: {unit.fragment_path or 'none'}\n"]
    lines.append("[Service]\nExecStart=\n")
    for command in unit.exec_start:
        if command.argv and command.argv[0] not in (command.path, os.path.basename(command.path)):
            log.warning(
                "%s: argv[0] %r differs from %s ('@' prefix); netpathctl run uses the path",
                unit.name, command.argv[0], command.path,
            )  # fmt: skip
        words = [netpathctl, "run", "--", command.path, *command.argv[1:]]
        lines.append(f"ExecStart={_prefix(command.flags)}{' '.join(map(_quote, words))}\n")
    return "".join(lines)


def render_register_drop_in(unit: ServiceUnit, netpathctl: str = NETPATHCTL) -> str:
    """The drop-in of the BPF backend: the unit registers its cgroup before it starts.

    ``ExecStartPre=`` runs in the unit's cgroup before the main process; ``+`` runs it with
    full privileges whatever ``User=`` says, so the call is root's and needs no polkit rule.
    """
    return (
        f"{HEADER}# Unit file: {unit.fragment_path or 'none'}\n"
        f"[Service]\nExecStartPre=+{_quote(netpathctl)} mptcp app register\n"
    )


def _is_wrapped(unit: ServiceUnit, netpathctl: str) -> bool:
    return any(c.path == netpathctl and list(c.argv[1:3]) == ["run", "--"] for c in unit.exec_start)


class MptcpApps:
    """Enables, disables and lists services whose TCP sockets become MPTCP sockets."""

    def __init__(self, systemd: SystemdUnits, unit_dir: Path, netpathctl: str = NETPATHCTL) -> None:
        self._systemd = systemd
        self._unit_dir = unit_dir
        self._netpathctl = netpathctl
        # one change at a time: two EnableApp calls for one unit must not both succeed
        self._lock = asyncio.Lock()

    def drop_in(self, name: str) -> Path:
        return self._unit_dir / f"{name}.d" / DROP_IN_NAME

    def units(self) -> list[str]:
        """Units with our drop-in, sorted; reads only the drop-in directory, never systemd."""
        try:
            entries = sorted(os.listdir(self._unit_dir))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise Failed(f"cannot read {self._unit_dir}: {error.strerror}") from error
        return [
            entry.removesuffix(".d")
            for entry in entries
            if entry.endswith(".service.d") and (self._unit_dir / entry / DROP_IN_NAME).is_file()
        ]

    async def enable(self, name: str, *, bpf: bool = False) -> Path:
        """Write the drop-in: cgroup registration with ``bpf``, else the seccomp wrapper."""
        check_unit_name(name)
        async with self._lock:
            return await self._enable(name, bpf=bpf)

    def backend(self, name: str) -> str:
        """``bpf`` or ``seccomp``: which drop-in the unit has (NotFound without one)."""
        try:
            text = self.drop_in(name).read_text()
        except FileNotFoundError:
            raise NotFound(f"MPTCP is not enabled for {name}") from None
        except OSError as error:
            raise Failed(f"cannot read {self.drop_in(name)}: {error.strerror}") from error
        return "bpf" if "mptcp app register" in text else "seccomp"

    async def disable(self, name: str) -> None:
        check_unit_name(name)
        async with self._lock:
            await self._disable(name)

    async def _enable(self, name: str, *, bpf: bool) -> Path:
        path = self.drop_in(name)
        if path.exists():
            raise AlreadyExists(f"MPTCP is already enabled for {name} ({path})")
        unit = await self._systemd.service(name)
        if _is_wrapped(unit, self._netpathctl):
            raise AlreadyExists(f"{name} already starts under {self._netpathctl} run")
        if bpf:
            text = render_register_drop_in(unit, self._netpathctl)
        else:
            text = render_drop_in(unit, self._netpathctl)
        created_dir = not path.parent.exists()
        try:
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as error:
            raise Failed(f"cannot create {path.parent}: {error.strerror}") from error
        write_atomic(path, text.encode())
        try:
            await self._systemd.reload()
        except NetpathdError:
            path.unlink(missing_ok=True)
            if created_dir:
                _remove_empty(path.parent)
            raise
        log.info("MPTCP enabled for %s: %s (restart the unit to apply)", name, path)
        return path

    async def _disable(self, name: str) -> None:
        path = self.drop_in(name)
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"MPTCP is not enabled for {name} (no {path})") from None
        except OSError as error:
            raise Failed(f"cannot read {path}: {error.strerror}") from error
        try:
            path.unlink()
        except OSError as error:
            raise Failed(f"cannot remove {path}: {error.strerror}") from error
        try:
            await self._systemd.reload()
        except NetpathdError:
            write_atomic(path, old)  # systemd still runs with it: keep disk and systemd equal
            raise
        _remove_empty(path.parent)
        log.info("MPTCP disabled for %s (restart the unit to apply)", name)


def _remove_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # other drop-ins live there: not ours to remove
        directory.rmdir()


def exec_commands(
    exec_start: Sequence[Sequence[Any]], exec_start_ex: Sequence[Sequence[Any]] | None
) -> tuple[ExecCommand, ...]:
    """ExecStart ``a(sasbttttuii)`` (and ExecStartEx ``a(sasasttttuii)``) as commands."""
    if exec_start_ex is not None and len(exec_start_ex) == len(exec_start):
        return tuple(
            ExecCommand(str(c[0]), tuple(map(str, c[1])), frozenset(map(str, c[2])))
            for c in exec_start_ex
        )
    return tuple(
        ExecCommand(
            str(c[0]),
            tuple(map(str, c[1])),
            frozenset({"ignore-failure"}) if c[2] else frozenset(),
        )
        for c in exec_start
    )
