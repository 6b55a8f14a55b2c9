"""The TCP->MPTCP service over real BPF maps, with the program's load stood in for.

These machines refuse the program itself, but they create and write maps: so the probe is
answered "available" and `MptcpifyLink.attach` creates the real maps with a stand-in link fd.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpathd import tcp_to_mptcp
from netpathd.errors import Failed, PermissionDenied
from netpathd.kernel import bpf_probe, bpf_syscall, cgroups, sysctl
from netpathd.kernel.bpf_mptcpify import MAPS, NetnsOffsets
from netpathd.kernel.bpf_probe import Hook, ProbeResult
from netpathd.kernel.mptcpify_link import MptcpifyLink
from netpathd.model.tcp_to_mptcp import Scope
from netpathd.model.tcp_to_mptcp_maps import CONVERT, LEAVE, MapContents

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="BPF maps need root")


@pytest.fixture
def probes() -> list[int]:
    """One entry per probe run."""
    return []


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch, probes: list[int]) -> Iterator[list[MptcpifyLink]]:
    made: list[MptcpifyLink] = []

    async def available() -> ProbeResult:
        probes.append(1)
        return ProbeResult(True, "", Hook(1, NetnsOffsets(1840, 40, 176)))

    def attach(offsets: NetnsOffsets, attach_btf_id: int) -> MptcpifyLink:
        maps = {spec.name: bpf_syscall.map_create(spec) for spec in MAPS}
        made.append(MptcpifyLink(maps, os.open("/dev/null", os.O_RDONLY)))
        return made[-1]

    monkeypatch.setattr(bpf_probe, "probe_in_loop", available)
    monkeypatch.setattr(MptcpifyLink, "attach", staticmethod(attach))
    yield made
    for link in made:
        link.close()


async def test_nothing_in_scope_loads_nothing(tmp_path: Path, links: list[MptcpifyLink]) -> None:
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    assert await service.backend() == "bpf" and links == [] and service.stats() is None


async def test_nothing_in_scope_probes_only_when_first_asked(
    tmp_path: Path, links: list[MptcpifyLink], probes: list[int]
) -> None:
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    assert probes == []  # the BTF walk does not hold up READY=1
    assert await service.backend() == "bpf"
    assert await service.available() and probes == [1]  # once


async def test_a_persisted_scope_is_probed_at_start(
    tmp_path: Path, links: list[MptcpifyLink], probes: list[int]
) -> None:
    (tmp_path / tcp_to_mptcp.STATE_FILE).write_text(
        tcp_to_mptcp.render_scope(Scope(False, (), ("/",)))
    )
    await tcp_to_mptcp.TcpToMptcp(tmp_path).start()
    assert probes == [1] and len(links) == 1


async def test_persisted_scope_is_applied_at_start(
    tmp_path: Path, links: list[MptcpifyLink]
) -> None:
    (tmp_path / tcp_to_mptcp.STATE_FILE).write_text(
        tcp_to_mptcp.render_scope(Scope(True, ("/",), ()))
    )
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    root = cgroups.cgroup_id(cgroups.cgroup2_root(), "/")
    assert links[0].contents() == MapContents(CONVERT, {root: LEAVE})
    own = cgroups.netns_inum()
    assert links[0].netns() == ({own} if sysctl.get_mptcp_enabled() else set())
    assert service.stats() == tcp_to_mptcp.Stats(0, 0)


async def test_the_netns_leaves_the_map_before_mptcp_is_disabled(
    tmp_path: Path, links: list[MptcpifyLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    monkeypatch.setattr(sysctl, "get_mptcp_enabled", lambda: True)
    await service.set_scope(Scope(system_wide=True))
    own = cgroups.netns_inum()
    assert links[0].netns() == {own}
    service.before_enabled_write(False)
    assert links[0].netns() == set()  # out before the 0 is written
    monkeypatch.setattr(sysctl, "get_mptcp_enabled", lambda: False)
    service.after_enabled_write()
    assert links[0].netns() == set()
    monkeypatch.setattr(sysctl, "get_mptcp_enabled", lambda: True)
    service.after_enabled_write()
    assert links[0].netns() == {own}  # in once 1 is written


async def test_a_failed_map_write_restores_the_file(
    tmp_path: Path, links: list[MptcpifyLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    assert await service.set_scope(Scope(system_wide=True))
    assert not await service.set_scope(Scope(system_wide=True))  # idempotent
    before = (tmp_path / tcp_to_mptcp.STATE_FILE).read_text()

    def broken(change: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(links[0], "apply", broken)
    with pytest.raises(Failed, match="cannot update the TCP->MPTCP maps"):
        await service.set_scope(Scope(system_wide=True, exclude=("/",)))
    assert (tmp_path / tcp_to_mptcp.STATE_FILE).read_text() == before
    assert service.scope == Scope(system_wide=True)


async def test_register_refuses_a_caller_outside_an_enabled_service(
    tmp_path: Path, links: list[MptcpifyLink]
) -> None:
    service = tcp_to_mptcp.TcpToMptcp(tmp_path)
    await service.start()
    with pytest.raises(PermissionDenied):
        await service.register(os.getpid(), ["web.service"])
    assert links == []


def test_the_state_file_round_trips() -> None:
    scope = Scope(True, ("a.service", "/x/y"), ("b.slice",))
    assert tcp_to_mptcp.parse_scope(tcp_to_mptcp.render_scope(scope)) == scope
