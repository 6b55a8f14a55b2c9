"""The daemon's own lifecycle and configuration, independent of any bus.

Reloading is all-or-nothing across every file: netpathd.conf, then each part's
files (dns.conf, mptcp.conf) are read and checked before any of them is
applied, so one bad file keeps the last good configuration of all of them in
force (and the error names the file and line).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path

from netpathd import __version__
from netpathd.errors import ConfigError
from netpathd.files.config import load_settings
from netpathd.model.settings import Settings

log = logging.getLogger(__name__)

Observer = Callable[[frozenset[str]], None]
Commit = Callable[[], Awaitable[None]]
Reloader = Callable[[Settings], Commit]
"""Reads and checks a part's files with the new settings (raising ConfigError, changing
nothing); the Commit it returns applies them."""


class DaemonState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Manager:
    def __init__(
        self,
        config_dir: Path,
        log_level_override: str | None,
        apply_log_level: Callable[[str], None],
    ) -> None:
        self.version = __version__
        self.config_dir = config_dir
        self._log_level_override = log_level_override
        self._apply_log_level = apply_log_level
        self._state = DaemonState.STARTING
        self._settings = Settings()
        self._observers: list[Observer] = []
        self._reloaders: list[Reloader] = []

    @property
    def state(self) -> DaemonState:
        return self._state

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def log_level(self) -> str:
        return self._log_level_override or self._settings.log_level

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` with the names of properties that changed."""
        self._observers.append(observer)

    def add_reloader(self, reloader: Reloader) -> None:
        """Parts with their own configuration re-read it on Reload() and SIGHUP."""
        self._reloaders.append(reloader)

    def set_state(self, state: DaemonState) -> None:
        if state is not self._state:
            self._state = state
            self._notify(frozenset({"State"}))

    def load_initial(self) -> None:
        """At start a bad file is logged and the defaults are used: better running than not."""
        try:
            self._apply(load_settings(self.config_dir))
        except ConfigError as error:
            log.error("configuration not loaded, using defaults: %s", error.message)
            self._apply(Settings())

    async def reload(self) -> None:
        """Re-read everything; on a bad file raise ConfigError and keep what was in force."""
        try:
            settings = load_settings(self.config_dir)
            commits = [reloader(settings) for reloader in self._reloaders]
        except ConfigError as error:
            log.error("reload refused, keeping the last good configuration: %s", error.message)
            raise
        self._apply(settings)
        for commit in commits:
            await commit()
        log.info("configuration reloaded from %s", self.config_dir)

    def _apply(self, settings: Settings) -> None:
        old_level = self.log_level
        self._settings = settings
        self._apply_log_level(self.log_level)
        if self.log_level != old_level:
            self._notify(frozenset({"LogLevel"}))

    def _notify(self, names: frozenset[str]) -> None:
        for observer in self._observers:
            observer(names)
