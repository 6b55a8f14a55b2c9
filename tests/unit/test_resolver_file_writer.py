"""The one writer of --resolv-conf: files for every mode, a link to resolved's stub."""

from __future__ import annotations

import os
from pathlib import Path

from netpathd.dns_backends.resolv_file import ResolverFileWriter
from netpathd.files.resolv_conf import RcManager
from netpathd.model.dns_plan import ResolverFile

STUB = "/run/systemd/resolve/stub-resolv.conf"
LOCAL = ResolverFile(("127.0.0.53",), ("corp.example",), ("edns0", "trust-ad"))
ORDERED = ResolverFile(("192.0.2.53",))


def writer(tmp_path: Path, rc_manager: RcManager = RcManager.SYMLINK) -> ResolverFileWriter:
    return ResolverFileWriter(
        tmp_path / "resolv.conf", tmp_path / "state" / "resolv.conf", rc_manager
    )


def test_symlink_mode_links_to_the_stub_and_a_later_mode_gets_a_file_again(tmp_path: Path) -> None:
    files = writer(tmp_path)
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    files.write(LOCAL, STUB)
    assert os.readlink(tmp_path / "resolv.conf") == STUB
    assert "nameserver 127.0.0.53" in (tmp_path / "state" / "resolv.conf").read_text()
    files.write(ORDERED)
    assert not (tmp_path / "resolv.conf").is_symlink()
    assert "nameserver 192.0.2.53" in (tmp_path / "resolv.conf").read_text()


def test_a_link_someone_else_made_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("nameserver 192.0.2.9\n")
    (tmp_path / "resolv.conf").symlink_to(tmp_path / "elsewhere")
    files = writer(tmp_path)
    files.write(LOCAL, STUB)
    assert os.readlink(tmp_path / "resolv.conf") == str(tmp_path / "elsewhere")
    files.write(ORDERED)
    assert os.readlink(tmp_path / "resolv.conf") == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").read_text() == "nameserver 192.0.2.9\n"


def test_file_mode_writes_the_stub_address_instead_of_a_link(tmp_path: Path) -> None:
    files = writer(tmp_path, RcManager.FILE)
    files.write(LOCAL, STUB)
    text = (tmp_path / "resolv.conf").read_text()
    assert not (tmp_path / "resolv.conf").is_symlink()
    assert "search corp.example\nnameserver 127.0.0.53\noptions edns0 trust-ad\n" in text
