"""The program's maps in the real kernel (creating and writing maps is allowed here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpathd.kernel import bpf_syscall
from netpathd.kernel.bpf_mptcpify import MAPS
from netpathd.kernel.mptcpify_link import MptcpifyLink
from netpathd.model.tcp_to_mptcp_maps import CONVERT, LEAVE, MapContents, change

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF maps need root")


@pytest.fixture
def link() -> Iterator[MptcpifyLink]:
    maps = {spec.name: bpf_syscall.map_create(spec) for spec in MAPS}
    held = MptcpifyLink(maps, os.open("/dev/null", os.O_RDONLY))  # stands in for the link fd
    yield held
    held.close()


def test_a_change_reaches_the_maps_and_reads_back(link: MptcpifyLink) -> None:
    assert link.contents() == MapContents(0, {})
    wanted = MapContents(LEAVE, {2**40 + 3: CONVERT, 17: LEAVE})
    link.apply(change(link.contents(), wanted))
    assert link.contents() == wanted
    narrower = MapContents(CONVERT, {17: LEAVE})
    link.apply(change(link.contents(), narrower))
    assert link.contents() == narrower


def test_namespaces_are_listed_and_unlisted(link: MptcpifyLink) -> None:
    link.set_netns(4026531840, enabled=True)
    link.set_netns(4026532000, enabled=True)
    link.set_netns(4026532000, enabled=False)
    link.set_netns(4026532999, enabled=False)  # not there: nothing to do
    assert link.netns() == {4026531840}


def test_counters_start_at_zero_on_every_cpu(link: MptcpifyLink) -> None:
    assert link.counters() == (0, 0)


def test_possible_cpus_reads_ranges(tmp_path: Path) -> None:
    (tmp_path / "possible").write_text("0-3,5,7-8\n")
    assert bpf_syscall.possible_cpus(tmp_path / "possible") == 7
