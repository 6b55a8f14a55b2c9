"""DnsManager keeps its index in step with its layers: the result is always plan() from scratch."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from netpathd.dns_manager import DnsManager
from netpathd.files.resolv_conf import RcManager
from netpathd.model.dns import DnsConnection, GlobalDnsPriority
from netpathd.model.dns_settings import merge_settings
from netpathd.model.links import DefaultRoute, Family, Link, NetState
from netpathd.model.split_dns import plan

NAMES = ("a", "b", "c")
LINKS = {i: Link(i, f"eth{i}", up=True) for i in (1, 2, 3)}


def settings_for(ifindex: int, server: int, priority: int) -> dict[str, object]:
    return {
        "connection.interface-name": f"eth{ifindex}",
        "connection.type": "ethernet",
        "ipv4.dns": [f"192.0.2.{server}"],
        "ipv4.dns-search": [f"d{server}.example"],
        "ipv4.dns-priority": priority,
    }


steps = st.one_of(
    st.tuples(
        st.sampled_from(("persist", "runtime")),
        st.sampled_from(NAMES),
        st.integers(1, 3),
        st.integers(1, 3),
        st.sampled_from((0, -1, 10, 50)),
    ),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("sourced"), st.sampled_from(NAMES), st.integers(1, 3)),
    st.tuples(st.just("unsource"), st.sampled_from(NAMES)),
    st.tuples(st.just("best"), st.integers(1, 3)),
    st.tuples(st.just("global"), st.sampled_from((0, 20, 200))),
    st.tuples(st.just("reload")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(steps, max_size=20))
def test_any_sequence_of_layer_changes_gives_the_plan_from_scratch(
    sequence: list[tuple[object, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        (workdir / "config").mkdir()
        (workdir / "config" / "dns.conf").write_text(
            '[connection "a"]\nconnection.interface-name = eth1\nconnection.type = ethernet\n'
            "ipv4.dns = 198.51.100.1\n"
        )
        dns = DnsManager(
            workdir / "config", workdir / "state", workdir / "resolv.conf", RcManager.UNMANAGED
        )
        dns.load()
        state = NetState(links=LINKS)
        dns.update_network(state)
        layers: dict[str, dict[str, str]] = {"config": {"a": "eth1"}, "state": {}, "runtime": {}}
        for step in sequence:
            state = apply_step(dns, step, state)
            expect_layers(layers, step)
            # Highest layer first: runtime over state over the admin's (sourced names differ).
            expected = {}
            for layer in ("config", "state", "runtime"):
                expected.update({name: (layer, ifname) for name, ifname in layers[layer].items()})
            shown = {c.name: (layer, c.interface_name) for c, layer in dns.connections()}
            assert {n: v for n, v in shown.items() if not n.startswith("ra:")} == expected
            conns = [conn for conn, _ in dns.connections()]
            assert dns.plan == plan(conns, state, dns.global_priority, dns.mode)
            assert dns.result == dns.plan.order
            assert dns.resolver == dns.plan.resolver


def expect_layers(layers: dict[str, dict[str, str]], step: tuple[object, ...]) -> None:
    match step:
        case ("persist", str(name), int(ifindex), *_):
            layers["state"][name] = f"eth{ifindex}"
            layers["runtime"].pop(name, None)
        case ("runtime", str(name), int(ifindex), *_):
            layers["runtime"][name] = f"eth{ifindex}"
        case ("remove", str(name)) if name != "a":
            layers["state"].pop(name, None)
            layers["runtime"].pop(name, None)


def apply_step(dns: DnsManager, step: tuple[object, ...], state: NetState) -> NetState:
    match step:
        case ("persist" | "runtime", str(name), int(ifindex), int(server), int(priority)):
            runtime = step[0] == "runtime"
            dns.set_connection(name, settings_for(ifindex, server, priority), runtime=runtime)
        case ("remove", str(name)):
            if name != "a" and name in {conn.name for conn, _ in dns.connections()}:
                dns.remove_connection(name)  # "a" is the admin's: removing it is refused
        case ("sourced", str(name), int(ifindex)):
            conn: DnsConnection = merge_settings(
                None, f"ra:{name}", settings_for(ifindex, 9, 0), created_seq=dns.next_seq()
            )
            dns.set_sourced(conn, "ra")
        case ("unsource", str(name)):
            dns.remove_sourced(f"ra:{name}")
        case ("best", int(ifindex)):
            routes = {DefaultRoute(Family.IPV4, ifindex, 10)}
            state = NetState(links=LINKS, default_routes=routes)
            dns.update_network(state)
        case ("global", int(priority)):
            dns.set_global_priority(GlobalDnsPriority(priority, 0))
        case ("reload",):
            dns.prepare_reload(RcManager.UNMANAGED)()
    return state
