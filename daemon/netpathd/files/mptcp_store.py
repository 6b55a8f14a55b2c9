"""Where the MPTCP configuration lives: three layers in memory, two files netpathd writes.

* ``admin``: ``--config-dir/mptcp.conf``, the administrator's; only read here
  (``/etc`` is read-only under ``ProtectSystem=strict``).
* ``persisted``: ``--state-dir/mptcp.conf``, what D-Bus callers asked for.
* ``runtime``: memory only, what the ``*Runtime`` D-Bus methods asked for.
* ``applied``: ``--runtime-dir/mptcp-applied.conf``: the endpoints netpathd put
  into the kernel that the state file does not list (runtime-only ones and the
  administrator's), and the kernel's values before a runtime-only change.  The
  kernel keeps endpoints and limits when the daemon exits, so without this
  record a restart could neither remove a runtime-only endpoint nor restore a
  limit, and could not tell its own endpoints from NetworkManager's.  The
  automatic endpoints it added and the links where it loosened ``rp_filter``
  are kept there too, for the same reasons.  Endpoints are recorded here
  *before* the kernel adds them (write-ahead, see ``own``).  It describes the
  kernel, which a reboot empties, so it lives on tmpfs (``/run/netpathd``, as
  NetworkManager keeps its own under ``/run/NetworkManager``): a record that
  outlived a reboot would claim endpoints the kernel no longer has, and a
  write on tmpfs costs a fraction of one on disk.  A change appends the whole
  new record, and the file's content is its last complete one
  (``files/record_log.py``): one write() ahead of each endpoint, not a rename.

All three files share one format (``netpathd.model.mptcp_config``); the record
holds one file of it after another.  Every write is atomic (the state file is
replaced, the record appended) and adopted in memory only once it succeeded, so
memory and disk always agree; that is why a write compares with memory, not with
the file: netpathd is the only writer of both.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from netpathd.errors import ConfigError, Failed
from netpathd.files.atomic import remove_stale_temporaries, write_atomic
from netpathd.files.config import read_config_text
from netpathd.files.record_log import RecordLog, last_record
from netpathd.files.state import save_state
from netpathd.model.mptcp_config import (
    EndpointConfig,
    EndpointKey,
    MptcpConfig,
    merge,
    parse_config,
    render_config,
)

log = logging.getLogger(__name__)

CONFIG_FILE_NAME = "mptcp.conf"
APPLIED_FILE_NAME = "mptcp-applied.conf"

STATE_HEADER = """\
Managed by netpathd: MPTCP settings made over D-Bus (org.netpathd1.Mptcp).
Same format as /etc/netpathd/mptcp.conf; edit that file instead of this one."""
APPLIED_HEADER = """\
Managed by netpathd: endpoints it put into the kernel, and the settings the kernel
had before a runtime-only change, so that a restart can take those changes back."""


def read_config(path: Path, *, record: bool = False) -> MptcpConfig:
    """The configuration in ``path``; empty when there is no file; ConfigError when bad.

    ``record``: ``path`` is the applied record, whose content is its last complete record
    (``files/record_log.py``).
    """
    text = read_config_text(path)
    if text is None:
        return MptcpConfig()
    if record:
        text = last_record(text, path)
    return parse_config(text, str(path), record=record)


class MptcpStore:
    def __init__(self, config_dir: Path, state_dir: Path, runtime_dir: Path) -> None:
        self.admin_path = config_dir / CONFIG_FILE_NAME
        self.state_path = state_dir / CONFIG_FILE_NAME
        self.applied_path = runtime_dir / APPLIED_FILE_NAME
        self._record = RecordLog(self.applied_path)
        self._old_applied_path = state_dir / APPLIED_FILE_NAME  # before --runtime-dir
        self.admin = MptcpConfig()
        self.persisted = MptcpConfig()
        self.runtime = MptcpConfig()
        self.applied = MptcpConfig()
        # A state file that could not be read is never saved over: that would throw away
        # everything it still holds.  Persisting is refused until a reload reads it.
        self.state_error: ConfigError | None = None

    def load(self) -> None:
        """Read every file; a bad one is logged and left empty (used at start)."""
        remove_stale_temporaries(self.state_path, self.applied_path, self._old_applied_path)
        self._move_old_record()
        for path, attribute in (
            (self.admin_path, "admin"),
            (self.state_path, "persisted"),
            (self.applied_path, "applied"),
        ):
            try:
                setattr(self, attribute, read_config(path, record=attribute == "applied"))
            except ConfigError as error:
                log.error("MPTCP configuration not loaded: %s", error.message)
                if attribute == "persisted":
                    self.state_error = error

    def _move_old_record(self) -> None:
        """Move the record an older netpathd kept in the state dir to the runtime dir.

        Copied first and removed after, so a start killed in between finds both; the
        one in the runtime dir is then the newer and the old one is only removed.
        """
        if self.applied_path.parent.resolve() == self._old_applied_path.parent.resolve():
            return  # --runtime-dir is the state dir: the record is already in place
        try:
            old = self._old_applied_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as error:
            log.error("cannot read %s: %s", self._old_applied_path, error.strerror)
            return
        try:
            if not self.applied_path.exists():
                self.applied_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.applied_path, old, durable=False)
                log.info("moved %s to %s", self._old_applied_path, self.applied_path)
            self._old_applied_path.unlink()
        except (OSError, Failed) as error:
            log.error("cannot move %s to %s: %s", self._old_applied_path, self.applied_path, error)

    def prepare_reload(self) -> Callable[[], None]:
        """Read the administrator's file; return what adopts it, or raise having changed nothing.

        A state file that was unreadable is tried again too, so fixing it and reloading
        is enough to persist changes again.
        """
        admin = read_config(self.admin_path)
        persisted = read_config(self.state_path) if self.state_error is not None else None

        def adopt() -> None:
            self.admin = admin
            if persisted is not None:
                self.persisted, self.state_error = persisted, None

        return adopt

    def desired(self) -> MptcpConfig:
        return merge(self.admin, self.persisted, self.runtime)

    def configured(self) -> MptcpConfig:
        """What survives a restart: the administrator's and the persisted layer."""
        return merge(self.admin, self.persisted)

    def persist(self, config: MptcpConfig) -> None:
        if config != self.persisted or self.state_error is not None:
            save_state(self.state_path, render_config(config, STATE_HEADER), self.state_error)
        self.persisted = config

    def record_applied(self, applied: MptcpConfig) -> None:
        if applied == self.applied:
            return
        self._record.write(render_config(applied, APPLIED_HEADER))
        self.applied = applied

    def close(self) -> None:
        self._record.close()

    def record_add(self, config: EndpointConfig, *, runtime: bool) -> Callable[[], None]:
        """Write an add down before the kernel sees it; returns how to take that back.

        A daemon killed between the kernel and the files must find the endpoint
        recorded as its own at the next start.  A persisted endpoint goes into the
        state file first, which is where it commits anyway, so success costs no
        extra write; a runtime-only one into the applied record (``own``), whose
        endpoints a start removes.
        """
        if runtime:
            if self.applied.endpoint(config.key) is not None:
                return lambda: None
            self.own([config.key])
            return lambda: self.disown(config.key)
        previous = self.persisted
        self.persist(previous.with_endpoint(config))
        return lambda: self.persist(previous)

    def own(self, keys: Iterable[EndpointKey]) -> None:
        """Record, before asking the kernel, that netpathd is adding these endpoints.

        Written ahead: a daemon killed right after the kernel's add still finds
        them here at start, so it removes what it no longer wants instead of
        taking it for someone else's.
        """
        applied = self.applied
        for key in keys:
            if applied.endpoint(key) is None:
                applied = applied.with_endpoint(EndpointConfig(*key))
        self.record_applied(applied)

    def disown(self, key: EndpointKey) -> None:
        """Take back ``own`` of an endpoint the kernel refused."""
        self.record_applied(self.applied.without_endpoint(key))

    def own_only(self, keys: Iterable[EndpointKey]) -> None:
        """After a full apply: exactly these endpoints need the record (persisted ones do
        not, their file says they are netpathd's, and writing less is faster)."""
        owned = tuple(EndpointConfig(address, port) for address, port in keys)
        self.record_applied(dataclasses.replace(self.applied, endpoints=owned))

    def own_automatic(self, owned: frozenset[EndpointKey], loosened: frozenset[str]) -> None:
        """What the automatic endpoints leave in the kernel (skipped when unchanged)."""
        self.record_applied(
            dataclasses.replace(self.applied, auto_owned=owned, rp_loosened=loosened)
        )

    def capture(self, name: str, value: int | bool) -> None:
        """Remember the kernel's value before the first runtime-only change of a setting."""
        if getattr(self.applied, name) is None:
            self.record_applied(dataclasses.replace(self.applied, **{name: value}))  # type: ignore[arg-type]

    def forget(self, key: EndpointKey) -> None:
        """An endpoint removed over D-Bus leaves every layer netpathd writes."""
        if self.persisted.endpoint(key) is not None:
            self.persist(self.persisted.without_endpoint(key))
        self.runtime = self.runtime.without_endpoint(key)
        self.record_applied(self.applied.without_endpoint(key))
