"""The reconciler's bookkeeping, against a fake path manager: what it owns, and when it says so.

No kernel here: the fake keeps an endpoint table, can be told to refuse, and
records what the applied record held at the moment of each add, which is the
write-ahead promise the daemon relies on after a crash.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netpathd.errors import ConfigError, Failed, NotFound
from netpathd.files.mptcp_store import MptcpStore
from netpathd.files.record_log import last_record
from netpathd.kernel import sysctl
from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState
from netpathd.model.mptcp import Endpoint, EndpointFlag, Limits
from netpathd.model.mptcp_config import EndpointKey, parse_config
from netpathd.mptcp_reconcile import MptcpReconciler

ip = ipaddress.ip_address
SUBFLOW = frozenset({EndpointFlag.SUBFLOW})


class FakePm:
    def __init__(self, store: MptcpStore) -> None:
        self.store = store
        self.table: list[Endpoint] = []
        self.limits = Limits(2, 0)
        self.refuse_add: set[str] = set()
        self.refuse_remove: set[int] = set()
        self.owned_at_add: list[frozenset[EndpointKey]] = []
        self.links = {"eth1": 2}
        self.requests: list[str] = []  # the netlink requests the real adapter would send

    async def get_limits(self) -> Limits:
        self.requests.append("GET_LIMITS")
        return self.limits

    def interface_index(self, name: str) -> int:
        return self.links.get(name, 0)

    async def set_limits(self, limits: Limits) -> None:
        self.requests.append("SET_LIMITS")
        self.limits = limits

    async def list_endpoints(self) -> list[Endpoint]:
        self.requests.append("GET_ADDR")
        return list(self.table)

    async def add_endpoint(self, endpoint: Endpoint) -> int:
        """Like the adapter's: the kernel's ack carries no id, so the table is read back."""
        await self.add_without_readback(endpoint)
        await self.list_endpoints()
        return self.table[-1].id

    async def add_without_readback(self, endpoint: Endpoint) -> None:
        self.requests.append("ADD_ADDR")
        self.owned_at_add.append(self.store.applied.auto_owned)
        if str(endpoint.address) in self.refuse_add:
            raise Failed("refused")
        ifindex = endpoint.ifindex
        if endpoint.interface:
            if endpoint.interface not in self.links:
                raise NotFound(f"no network interface {endpoint.interface!r}")
            ifindex = self.links[endpoint.interface]
        new_id = max((e.id for e in self.table), default=0) + 1
        self.table.append(
            Endpoint(
                new_id,
                endpoint.address,
                interface=endpoint.interface,
                ifindex=ifindex,
                flags=endpoint.flags,
            )
        )

    async def remove_endpoint(self, endpoint_id: int) -> None:
        self.requests.append("DEL_ADDR")
        if endpoint_id in self.refuse_remove:
            raise Failed("refused")
        self.table = [e for e in self.table if e.id != endpoint_id]

    async def set_endpoint_flags(self, endpoint_id: int, flags: frozenset[EndpointFlag]) -> None:
        raise AssertionError("not expected here")


@pytest.fixture
def rp(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    values = {"eth1": 1}

    def get_rp_filter(name: str) -> sysctl.RpFilter:
        return sysctl.RpFilter(values[name])

    def set_rp_filter(name: str, value: sysctl.RpFilter) -> None:
        values[name] = int(value)

    monkeypatch.setattr(sysctl, "get_mptcp_enabled", lambda: True)
    monkeypatch.setattr(sysctl, "set_mptcp_enabled", lambda enabled: None)
    monkeypatch.setattr(sysctl, "get_rp_filter", get_rp_filter)
    monkeypatch.setattr(sysctl, "set_rp_filter", set_rp_filter)
    return values


def setup(tmp_path: Path, admin: str) -> tuple[MptcpStore, FakePm, MptcpReconciler]:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mptcp.conf").write_text(admin)
    store = MptcpStore(tmp_path / "config", tmp_path / "state", tmp_path / "run")
    store.load()
    pm = FakePm(store)
    reconciler = MptcpReconciler(store, pm)  # type: ignore[arg-type]
    return store, pm, reconciler


def state(*addresses: str, links: tuple[str, ...] = ("eth1",)) -> NetState:
    indexes = {name: 2 + n for n, name in enumerate(links)}
    return NetState(
        links={index: Link(index, name, up=True) for name, index in indexes.items()},
        addresses=frozenset(Address(2, ip(a), 24, 0, tentative=False) for a in addresses),
        default_routes=frozenset({DefaultRoute(Family.IPV4, 2, 100)}),
    )


def record(tmp_path: Path) -> str:
    path = tmp_path / "run" / "mptcp-applied.conf"
    return last_record(path.read_text(), path)


async def test_ownership_is_recorded_before_the_add_and_kept_across_a_reload(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    _store, pm, reconciler = setup(tmp_path, "[auto]\n")
    reconciler.state = state("192.0.2.1")
    changed = await reconciler.network()
    assert [str(e.address) for e in changed["Endpoints"]] == ["192.0.2.1"]  # type: ignore[attr-defined]
    assert pm.owned_at_add == [frozenset({(ip("192.0.2.1"), 0)})]
    assert "endpoints = 192.0.2.1\nrp-filter-loosened = eth1\n" in record(tmp_path)
    assert rp["eth1"] == 2
    again = MptcpStore(tmp_path / "config", tmp_path / "state", tmp_path / "run")
    again.load()
    assert again.applied.auto_owned == {(ip("192.0.2.1"), 0)}
    assert again.applied.rp_loosened == {"eth1"}
    assert await reconciler.network() == {}  # applied: the next plan is empty


async def test_a_failed_add_is_not_owned_and_a_failed_remove_stays_owned(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    store, pm, reconciler = setup(tmp_path, "[auto]\n")
    pm.refuse_add = {"198.51.100.1"}
    reconciler.state = state("192.0.2.1", "198.51.100.1")
    await reconciler.network()
    assert store.applied.auto_owned == {(ip("192.0.2.1"), 0)}
    pm.refuse_remove = {1}
    reconciler.state = state()
    await reconciler.network()
    assert store.applied.auto_owned == {(ip("192.0.2.1"), 0)}
    assert rp["eth1"] == 1  # restored: no IPv4 endpoint is wanted there any more
    pm.refuse_remove = set()
    await reconciler.network()
    assert store.applied.auto_owned == frozenset()
    assert pm.table == []


async def test_a_configured_endpoint_takes_the_address_over(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    store, pm, reconciler = setup(tmp_path, "[auto]\n")
    reconciler.state = state("192.0.2.1")
    await reconciler.network()
    # the admin now configures the same address: the policy lets go, nothing is removed
    (tmp_path / "config" / "mptcp.conf").write_text(
        '[auto]\n[endpoint "192.0.2.1"]\nflags = subflow\ninterface = eth1\n'
    )
    store.prepare_reload()()
    await reconciler.full()
    assert store.applied.auto_owned == frozenset()
    assert [(str(e.address), e.id) for e in pm.table] == [("192.0.2.1", 1)]


async def test_removing_auto_from_the_file_retires_what_it_added(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    store, pm, reconciler = setup(tmp_path, "[auto]\n")
    pm.table.append(Endpoint(9, ip("203.0.113.7"), flags=SUBFLOW))  # someone else's
    reconciler.state = state("192.0.2.1")
    await reconciler.network()
    (tmp_path / "config" / "mptcp.conf").write_text("")
    store.prepare_reload()()
    await reconciler.full()
    assert [str(e.address) for e in pm.table] == ["203.0.113.7"]
    assert rp["eth1"] == 1
    assert "[automatic]" not in record(tmp_path)
    assert not reconciler.wants_network(state("192.0.2.1"))


async def test_a_bound_endpoint_waits_for_its_interface(tmp_path: Path, rp: dict[str, int]) -> None:
    _store, pm, reconciler = setup(
        tmp_path, '[endpoint "203.0.113.9"]\nflags = subflow\ninterface = late0\n'
    )
    reconciler.state = state()
    await reconciler.full()
    assert pm.table == []
    assert not reconciler.wants_network(state())
    pm.links["late0"] = 3
    appeared = state(links=("eth1", "late0"))
    assert reconciler.wants_network(appeared)
    reconciler.state = appeared
    changed = await reconciler.network()
    assert [str(e.address) for e in changed["Endpoints"]] == ["203.0.113.9"]  # type: ignore[attr-defined]
    assert not reconciler.wants_network(appeared)  # done: no more rounds for it


async def test_a_new_address_costs_one_dump_one_add_and_one_dump(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    """The round between an address and its endpoint asks the kernel only what it decides on.

    Under ``limits = keep`` (the default) the limits are not read; the adds are
    not each read back for their id: one dump after the writes gives the ids
    and the ``Endpoints`` value.
    """
    _store, pm, reconciler = setup(tmp_path, "[auto]\n")
    reconciler.state = state("192.0.2.1", "198.51.100.1", "203.0.113.1")
    changed = await reconciler.network()
    assert pm.requests == ["GET_ADDR", "ADD_ADDR", "ADD_ADDR", "ADD_ADDR", "GET_ADDR"]
    assert [str(e.address) for e in changed["Endpoints"]] == [  # type: ignore[attr-defined]
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
    ]
    pm.requests.clear()
    assert await reconciler.network() == {}
    assert pm.requests == ["GET_ADDR"]


async def test_limits_that_follow_are_read_once_and_set_after_the_adds(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    _store, pm, reconciler = setup(tmp_path, "[auto]\nlimits = follow\n")
    pm.limits = Limits(0, 0)
    reconciler.state = state("192.0.2.1", "198.51.100.1")
    changed = await reconciler.network()
    assert pm.requests == [
        "GET_LIMITS",
        "GET_ADDR",
        "ADD_ADDR",
        "ADD_ADDR",
        "GET_ADDR",
        "SET_LIMITS",
    ]
    assert pm.limits == Limits(2, 2)
    assert changed["Subflows"] == 2


def test_the_record_and_the_admin_file_keep_their_own_sections() -> None:
    text = "[automatic]\nendpoints = 192.0.2.1 2001:db8::1\nrp-filter-loosened = eth1\n"
    config = parse_config(text, "applied", record=True)
    assert config.auto_owned == {(ip("192.0.2.1"), 0), (ip("2001:db8::1"), 0)}
    assert config.auto is None
    with pytest.raises(ConfigError, match="unknown section"):
        parse_config(text, "admin")
    with pytest.raises(ConfigError, match="unknown section"):
        parse_config("[auto]\n", "applied", record=True)
    assert parse_config("[auto]\n", "admin").auto is not None
    assert parse_config("[mptcp]\n", "admin").auto is None


async def test_an_endpoint_follows_its_interface_by_name(
    tmp_path: Path, rp: dict[str, int]
) -> None:
    _store, pm, reconciler = setup(
        tmp_path, '[endpoint "203.0.113.9"]\nflags = subflow\ninterface = eth1\n'
    )
    pm.table.append(Endpoint(5, ip("203.0.113.8"), interface="eth1", ifindex=2))  # not ours
    reconciler.state = state()
    await reconciler.full()
    assert [(e.id, e.ifindex) for e in pm.table] == [(5, 2), (6, 2)]
    assert not reconciler.wants_network(state())

    del pm.links["eth1"]  # the kernel keeps the endpoint on the dead ifindex
    gone = state(links=("lo",))
    assert reconciler.wants_network(gone)
    reconciler.state = gone
    changed = await reconciler.network()
    assert [e.id for e in changed["Endpoints"]] == [5]  # type: ignore[attr-defined]

    pm.links["eth1"] = 7  # back, with another ifindex
    back = state(links=("lo", "eth1"))
    assert reconciler.wants_network(back)
    reconciler.state = back
    await reconciler.network()
    assert [(e.id, e.ifindex) for e in pm.table] == [(5, 2), (6, 7)]
    assert not reconciler.wants_network(back)
