"""Manager.reload(): every file is read before anything of any file is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpathd.errors import ConfigError
from netpathd.manager import Commit, Manager, Reloader
from netpathd.model.settings import Settings


def manager(config_dir: Path, levels: list[str]) -> Manager:
    created = Manager(config_dir, None, levels.append)
    created.load_initial()
    return created


def part(name: str, applied: list[str], *, bad: bool = False) -> Reloader:
    def prepare(settings: Settings) -> Commit:
        if bad:
            raise ConfigError(f"/etc/netpathd/{name}", 3, "bad")

        async def commit() -> None:
            applied.append(f"{name}:{settings.rc_manager}")

        return commit

    return prepare


async def test_a_bad_part_keeps_every_part_and_the_settings(tmp_path: Path) -> None:
    levels: list[str] = []
    applied: list[str] = []
    daemon = manager(tmp_path, levels)
    daemon.add_reloader(part("dns.conf", applied))
    daemon.add_reloader(part("mptcp.conf", applied, bad=True))
    (tmp_path / "netpathd.conf").write_text("[main]\nlog-level = debug\n")
    with pytest.raises(ConfigError, match=r"^/etc/netpathd/mptcp.conf:3: bad$"):
        await daemon.reload()
    assert (applied, daemon.log_level, levels) == ([], "info", ["info"])


async def test_parts_apply_in_order_with_the_new_settings(tmp_path: Path) -> None:
    levels: list[str] = []
    applied: list[str] = []
    daemon = manager(tmp_path, levels)
    daemon.add_reloader(part("dns.conf", applied))
    daemon.add_reloader(part("mptcp.conf", applied))
    (tmp_path / "netpathd.conf").write_text("[main]\nlog-level = debug\nrc-manager = file\n")
    await daemon.reload()
    assert applied == ["dns.conf:file", "mptcp.conf:file"]
    assert (daemon.log_level, levels) == ("debug", ["info", "debug"])
