"""The first back-end: the resolver file itself (dns=default), and the writer all share.

`ResolverFileWriter` is the only code that writes `--resolv-conf`; the local-resolver
back-ends use it to point the file at 127.0.0.1 / 127.0.0.53 once their resolver has the plan.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from netpathd.files.atomic import write_atomic
from netpathd.files.resolv_conf import RcManager, ResolverText, render, write_resolv_conf
from netpathd.model.dns_plan import DnsMode, DnsPlan

log = logging.getLogger(__name__)


class ResolverFileWriter:
    def __init__(self, path: Path, private_copy: Path, rc_manager: RcManager) -> None:
        self.path = path
        # The private copy NetworkManager calls /run/NetworkManager/resolv.conf: with
        # rc-manager=symlink, /etc/resolv.conf may point here.
        self.private_copy = private_copy
        self.rc_manager = rc_manager
        self._written: tuple[str, str | None, RcManager] | None = None
        self._own_link: str | None = None  # the symlink target netpathd itself put at `path`

    def write(self, resolver: ResolverText, link_target: str | None = None) -> None:
        """Write the file (or, with rc-manager=symlink and a target, link it); skip unchanged.

        Raises Failed when the file cannot be written.
        """
        text = render(resolver)
        if (text, link_target, self.rc_manager) == self._written:
            return
        self.private_copy.parent.mkdir(parents=True, exist_ok=True)
        if link_target is not None and self.rc_manager is RcManager.SYMLINK:
            write_resolv_conf(self.path, text, RcManager.UNMANAGED, private_path=self.private_copy)
            self._link(link_target)
        else:
            # A link netpathd made for an earlier mode is replaced by a file again: the
            # rename of the atomic write replaces the link itself, never its target.
            if self._points_to_own_link():
                write_resolv_conf(
                    self.path, text, RcManager.UNMANAGED, private_path=self.private_copy
                )
                changed = write_atomic(self.path, text.encode())
            else:
                changed = write_resolv_conf(
                    self.path, text, self.rc_manager, private_path=self.private_copy
                )
            self._own_link = None
            if changed:
                log.info(
                    "wrote %s: nameservers %s",
                    self.path,
                    " ".join(resolver.nameservers) or "(none)",
                    extra={"RESOLV_CONF": str(self.path)},
                )
        self._written = (text, link_target, self.rc_manager)

    def _link(self, target: str) -> None:
        """Point `path` at `target`, unless it is a symlink someone else made."""
        if self.path.is_symlink():
            current = os.readlink(self.path)
            if current == target:
                self._own_link = target
                return
            if current not in (self._own_link, str(self.private_copy)):
                return
        temporary = self.path.with_name(f".{self.path.name}.netpathd-link")
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, self.path)
        self._own_link = target
        log.info("linked %s to %s", self.path, target, extra={"RESOLV_CONF": str(self.path)})

    def _points_to_own_link(self) -> bool:
        return (
            self._own_link is not None
            and self.path.is_symlink()
            and os.readlink(self.path) == self._own_link
        )


class ResolverFileBackend:
    """dns=default: the ordered servers, written synchronously (errors reach the caller)."""

    mode = DnsMode.DEFAULT
    routes_domains = False

    def __init__(self, writer: ResolverFileWriter) -> None:
        self._writer = writer

    @property
    def state(self) -> str:
        return "running"

    def apply(self, plan: DnsPlan) -> None:
        # With no DNS connection at all netpathd has nothing to say about DNS: it leaves the
        # resolver file alone instead of replacing the host's servers with none.
        if plan.order.entries:
            self._writer.write(plan.resolver)

    async def close(self) -> None:
        """Nothing to undo: the next mode's back-end writes the file."""


class NoBackend:
    """dns=none: netpathd computes (Explain, ExplainDomains) but pushes and writes nothing."""

    mode = DnsMode.NONE
    routes_domains = False

    @property
    def state(self) -> str:
        return "none"

    def apply(self, plan: DnsPlan) -> None:
        """Nothing is pushed in this mode."""

    async def close(self) -> None:
        """Nothing was configured."""
