"""The persisted DNS layer: one file per connection, the old single file still read."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from netpathd.errors import ConfigError, Failed
from netpathd.files.state import DnsStateStore
from netpathd.model.dns import DnsConnection, DnsFamilyConfig, GlobalDnsPriority
from netpathd.model.dns_settings import DnsConfig, render_connections_file
from netpathd.model.dns_state_file import connection_file_name


def conn(name: str, server: str = "192.0.2.53", seq: int = 0) -> DnsConnection:
    family = DnsFamilyConfig((ipaddress.ip_address(server),), ("example.com",), (), 10)
    return DnsConnection(name, "eth0", "ethernet", ipv4=family, created_seq=seq)


def stored_names(store: DnsStateStore) -> list[str]:
    return [c.name for c, _ in store.read().connections]


def opened(state_dir: Path) -> DnsStateStore:
    """A store as the daemon has it after loading: read, and adopted."""
    store = DnsStateStore(state_dir)
    store.adopt(store.read())
    return store


def test_an_old_state_file_is_read_and_moved_into_files_at_the_first_save(
    tmp_path: Path,
) -> None:
    old = DnsConfig(GlobalDnsPriority(20, 0), (conn("wan"), conn("lan", "198.51.100.53", seq=1)))
    (tmp_path / "dns.conf").write_text(render_connections_file(old))
    store = DnsStateStore(tmp_path)
    stored = store.read()
    assert stored.global_priority == GlobalDnsPriority(20, 0)
    assert stored.connections == ((old.connections[0], 0), (old.connections[1], 1))
    store.adopt(stored)
    store.save_connection(conn("vpn"), 2)
    assert sorted(p.name for p in store.directory.iterdir()) == ["lan.conf", "vpn.conf", "wan.conf"]
    assert "[connection" not in (tmp_path / "dns.conf").read_text()
    again = DnsStateStore(tmp_path).read()
    assert again.global_priority == GlobalDnsPriority(20, 0)
    assert [(c.name, seq) for c, seq in again.connections] == [("wan", 0), ("lan", 1), ("vpn", 2)]
    assert again.connections[1][0] == old.connections[1]


def test_a_move_cut_short_by_a_crash_reads_each_connection_once(tmp_path: Path) -> None:
    old = DnsConfig(connections=(conn("wan"), conn("lan", seq=1)))
    (tmp_path / "dns.conf").write_text(render_connections_file(old))
    store = opened(tmp_path)
    store.save_connection(conn("wan"), 0)  # moves both, then writes wan again
    (tmp_path / "dns.conf").write_text(render_connections_file(old))  # as if dns.conf was not
    assert stored_names(DnsStateStore(tmp_path)) == ["wan", "lan"]  # rewritten before the crash


def test_a_moved_connection_is_on_disk_before_its_name_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss during the move may lose a connection file, never leave it empty: each
    is fsync'ed under its temporary name before any is renamed into place."""
    old = DnsConfig(connections=(conn("wan"), conn("lan", seq=1)))
    (tmp_path / "dns.conf").write_text(render_connections_file(old))
    store = opened(tmp_path)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: str, target: str | os.PathLike[str]) -> None:
        events.append(("rename", os.fspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save_connection(conn("vpn"), 2)
    moved = {str(store.directory / connection_file_name(name)) for name in ("wan", "lan")}
    first_rename = next(i for i, (kind, path) in enumerate(events) if path in moved)
    synced_before = [path for kind, path in events[:first_rename] if kind == "fsync"]
    assert len([path for path in synced_before if path.endswith(".tmp")]) == 2, events


def test_a_save_writes_only_its_own_file_and_a_removal_removes_it(tmp_path: Path) -> None:
    store = opened(tmp_path)
    for seq, name in enumerate(("a", "b", "c")):
        store.save_connection(conn(name), seq)
    before = {p.name: p.stat().st_ino for p in store.directory.iterdir()}
    store.save_connection(conn("b", "203.0.113.53"), 1)
    after = {p.name: p.stat().st_ino for p in store.directory.iterdir()}
    assert [name for name in before if before[name] != after[name]] == ["b.conf"]
    store.remove_connection("b")
    assert sorted(p.name for p in store.directory.iterdir()) == ["a.conf", "c.conf"]
    stored = DnsStateStore(tmp_path).read().connections
    assert [(c.name, seq) for c, seq in stored] == [("a", 0), ("c", 2)]


@pytest.mark.parametrize(
    "name",
    ["..", ".hidden", "a/b", "../escape", "+plus", "100%", "é" * 64, "日本" * 32, "a b"],
)
def test_any_connection_name_gets_a_file_of_its_own_in_the_directory(
    tmp_path: Path, name: str
) -> None:
    store = opened(tmp_path)
    store.save_connection(conn(name), 0)
    store.save_connection(conn("other"), 1)
    path = store.directory / connection_file_name(name)
    assert path.is_file()
    assert path.parent == store.directory and not path.name.startswith(".")
    assert len(path.name.encode()) <= 255
    assert stored_names(DnsStateStore(tmp_path)) == [name, "other"]


def test_file_names_never_collide() -> None:
    names = ["a", "A", "a.", "a%2E", "%2E", ".", "..", "+" + "0" * 64, "é" * 64, "é" * 63 + "e"]
    assert len({connection_file_name(name) for name in names}) == len(names)


def test_a_bad_connection_file_is_reported_and_blocks_saving(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.save_connection(conn("wan"), 0)
    bad = store.directory / "wan.conf"
    bad.write_text(bad.read_text().replace("created-seq = 0", "created-seq = 0\nbogus = 1"))
    with pytest.raises(ConfigError) as caught:
        store.read()
    assert caught.value.path == str(bad)
    assert "bogus: unknown key in [order]" in caught.value.reason
    with pytest.raises(Failed, match=f"not saving over {bad}"):
        store.save_connection(conn("lan"), 1)
    assert not (store.directory / "lan.conf").exists()


def test_the_same_connection_in_two_files_is_an_error(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.save_connection(conn("wan"), 0)
    (store.directory / "copy.conf").write_text((store.directory / "wan.conf").read_text())
    with pytest.raises(ConfigError, match="connection 'wan' is also in"):
        DnsStateStore(tmp_path).read()


def test_temporary_files_of_a_killed_write_are_removed_and_others_kept(tmp_path: Path) -> None:
    store = DnsStateStore(tmp_path)
    store.directory.mkdir()
    stale = store.directory / ".wan.conf.abcdefgh.tmp"
    kept = [store.directory / ".wan.conf.tmp", store.directory / "notes.txt"]
    for path in (stale, *kept):
        path.write_text("half-written\n")
    store.remove_stale_temporaries()
    assert not stale.exists()
    assert all(path.exists() for path in kept)
    assert store.read().connections == ()
