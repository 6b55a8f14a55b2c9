"""The planner for automatic MPTCP endpoints, against NetworkManager's rules, without a kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpathd.model.links import Address, DefaultRoute, Family, Link, NetState
from netpathd.model.mptcp import (
    CHANGEABLE_FLAGS,
    MAX_ENDPOINTS,
    Endpoint,
    EndpointFlag,
    Limits,
)
from netpathd.model.mptcp_auto import (
    FlagChange,
    LeftOut,
    OwnedKey,
    Plan,
    RpFilterWrite,
    plan,
    skip_reason,
)
from netpathd.model.mptcp_auto_config import DISABLED, AutoPolicy, AutoRule, LimitsMode

SIGNAL, SUBFLOW, BACKUP, FULLMESH, IMPLICIT = (
    EndpointFlag.SIGNAL,
    EndpointFlag.SUBFLOW,
    EndpointFlag.BACKUP,
    EndpointFlag.FULLMESH,
    EndpointFlag.IMPLICIT,
)
V4, V6 = Family.IPV4, Family.IPV6
ip = ipaddress.ip_address
ETH0 = Link(2, "eth0", up=True)
ETH1 = Link(3, "eth1", up=True)
NM_DEFAULT = AutoPolicy()


def addr(ifindex: int, text: str, *, scope: int = 0, tentative: bool = False) -> Address:
    value = ip(text)
    return Address(ifindex, value, 24 if value.version == 4 else 64, scope, tentative)


def net(
    links: Iterable[Link] = (ETH0, ETH1),
    addresses: Iterable[Address] = (),
    routes: Iterable[tuple[Family, int]] = ((V4, 2), (V6, 2)),
) -> NetState:
    return NetState(
        links={link.ifindex: link for link in links},
        addresses=frozenset(addresses),
        default_routes=frozenset(DefaultRoute(fam, index, 100) for fam, index in routes),
    )


def ep(
    text: str,
    *flags: EndpointFlag,
    id: int = 1,
    ifindex: int = 2,
    port: int = 0,
    interface: str = "",
) -> Endpoint:
    return Endpoint(
        id=id,
        address=ip(text),
        port=port,
        interface=interface,
        ifindex=ifindex,
        flags=frozenset(flags),
    )


def new(text: str, link: Link, *flags: EndpointFlag) -> Endpoint:
    """An endpoint as the plan asks for it: id 0, bound to the link."""
    return Endpoint(0, ip(text), 0, link.name, link.ifindex, frozenset(flags or {SUBFLOW}))


def owned(*texts: str) -> frozenset[OwnedKey]:
    return frozenset((ip(text), 0) for text in texts)


def added(result: Plan) -> list[str]:
    return [str(endpoint.address) for endpoint in result.add]


# --- a tiny kernel: what the engine will do with a plan --------------------------------------


class Refused(Exception):
    pass


def _same(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def apply(
    result: Plan,
    table: list[Endpoint],
    limits: Limits,
    rp_filter: Mapping[str, int],
) -> tuple[list[Endpoint], Limits, dict[str, int]]:
    """Apply like pm_kernel.c would: ERANGE when full, EEXIST on a duplicate, implicit takeover."""
    table = [endpoint for endpoint in table if endpoint not in result.remove]
    for change in result.change:
        index = table.index(change.endpoint)
        current = table[index]
        flags = (current.flags - CHANGEABLE_FLAGS) | (change.flags & CHANGEABLE_FLAGS)
        table[index] = replace(current, flags=flags)
    for endpoint in result.add:
        if len(table) >= MAX_ENDPOINTS:
            raise Refused(f"ERANGE adding {endpoint.address}")
        same = [
            other
            for other in table
            # mptcp_addresses_equal(..., cur->port || entry->port): ports only matter if set
            if _same(other.address) == _same(endpoint.address) and other.port == endpoint.port
        ]
        if same and IMPLICIT not in same[0].flags:
            raise Refused(f"EEXIST adding {endpoint.address}")
        taken = {other.id for other in table}
        new_id = same[0].id if same else min(set(range(1, 256)) - taken)
        table = [other for other in table if other not in same]
        table.append(replace(endpoint, id=new_id))
    rp = dict(rp_filter)
    for write in result.rp_filter:
        rp[write.interface] = write.value
    return table, result.limits or limits, rp


# --- eligibility, exactly as _l3_commit_mptcp_af() -------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "tentative", "reason"),
    [
        ("198.51.100.10", 0, False, None),
        ("10.1.2.3", 0, False, None),  # RFC 1918 is taken, like NetworkManager
        ("127.0.0.2", 254, False, "host scope"),
        ("127.0.0.2", 0, False, "host scope"),  # scope from the address, like NM
        ("169.254.7.7", 0, False, "link scope"),
        ("198.51.100.10", 253, False, "link scope"),  # ip addr add ... scope link
        ("::1", 254, False, "host scope"),
        ("fe80::1", 253, False, "link scope"),
        ("fd12:3456::1", 0, False, "IPv6 unique local address (fc00::/7)"),
        ("fc00::1", 0, False, "IPv6 unique local address (fc00::/7)"),
        ("fec0::1", 200, False, None),  # deprecated site-local is taken, like NM
        ("2001:db8::1", 0, True, "tentative (duplicate address detection not finished)"),
        ("2001:db8::1", 0, False, None),
    ],
)
def test_skip_reason_follows_networkmanager(
    text: str, scope: int, tentative: bool, reason: str | None
) -> None:
    assert skip_reason(addr(2, text, scope=scope, tentative=tentative)) == reason


def test_every_eligible_address_gets_a_subflow_endpoint_with_kernel_chosen_id() -> None:
    state = net(
        addresses=[
            addr(2, "198.51.100.10"),
            addr(2, "2001:db8::10"),
            addr(2, "fe80::10", scope=253),
            addr(2, "fd00::10"),
            addr(2, "2001:db8::11", tentative=True),
        ]
    )
    result = plan(NM_DEFAULT, state, True, [], frozenset())
    assert result.add == (new("198.51.100.10", ETH0), new("2001:db8::10", ETH0))
    assert result.owned == owned("198.51.100.10", "2001:db8::10")
    assert result.remove == () and result.change == ()
    assert result.limits is None  # NetworkManager never sets limits: keep is the default


def test_a_link_that_is_down_gets_nothing_and_loses_what_netpathd_added() -> None:
    down = Link(2, "eth0", up=False)
    state = net(links=[down, ETH1], addresses=[addr(2, "198.51.100.10")])
    kernel = [ep("198.51.100.10", SUBFLOW, id=4)]
    result = plan(NM_DEFAULT, state, True, kernel, owned("198.51.100.10"))
    assert result.add == ()
    assert result.remove == (kernel[0],)
    assert result.owned == frozenset()


def test_the_default_route_condition_is_per_family_on_the_same_link() -> None:
    # NM: nm_l3_config_data_get_best_default_route(l3cd, addr_family) of this device.
    state = net(
        addresses=[addr(2, "198.51.100.10"), addr(2, "2001:db8::10"), addr(3, "2001:db8:1::10")],
        routes=[(V4, 2), (V6, 3)],  # eth0 has only IPv4's, eth1 only IPv6's
    )
    result = plan(NM_DEFAULT, state, True, [], frozenset())
    assert added(result) == ["198.51.100.10", "2001:db8:1::10"]

    anyway = AutoPolicy(default=AutoRule(also_without_default_route=True))
    assert added(plan(anyway, state, True, [], frozenset())) == [
        "198.51.100.10",
        "2001:db8::10",
        "2001:db8:1::10",
    ]


def test_a_linkdown_default_route_is_no_default_route() -> None:
    # NM drops the configuration of a device that loses carrier, its default route with it.
    state = NetState(
        links={2: ETH0, 3: ETH1},
        addresses=frozenset([addr(2, "198.51.100.10"), addr(3, "203.0.113.10")]),
        default_routes=frozenset(
            [DefaultRoute(V4, 2, 100, linkdown=True), DefaultRoute(V4, 3, 200)]
        ),
    )
    kernel = [ep("198.51.100.10", SUBFLOW, id=4)]
    result = plan(NM_DEFAULT, state, True, kernel, owned("198.51.100.10"))
    assert added(result) == ["203.0.113.10"]
    assert result.remove == (kernel[0],)


def test_nothing_while_the_sysctl_is_off_unless_also_without_sysctl() -> None:
    state = net(addresses=[addr(2, "198.51.100.10")])
    kernel = [ep("198.51.100.10", SUBFLOW, id=3)]
    off = plan(NM_DEFAULT, state, False, kernel, owned("198.51.100.10"))
    assert off.add == () and off.remove == (kernel[0],)

    forced = AutoPolicy(default=AutoRule(also_without_sysctl=True))
    assert added(plan(forced, state, False, [], frozenset())) == ["198.51.100.10"]


def test_most_specific_rule_wins_and_keys_cascade() -> None:
    policy = AutoPolicy(
        default=AutoRule(flags=DISABLED),
        interfaces=(("eth*", AutoRule(flags=frozenset({SUBFLOW}))),),
        prefixes=(
            (ipaddress.ip_network("198.51.100.0/24"), AutoRule(flags=frozenset({SUBFLOW, BACKUP}))),
            (ipaddress.ip_network("198.51.100.7/32"), AutoRule(flags=DISABLED)),
            # a prefix rule can enable an address on a link whose rule is disabled
            (ipaddress.ip_network("203.0.113.0/24"), AutoRule(flags=frozenset({SIGNAL}))),
        ),
    )
    wlan = Link(4, "wlan0", up=True)
    state = net(
        links=[ETH0, wlan],
        addresses=[
            addr(2, "198.51.100.6"),
            addr(2, "198.51.100.7"),
            addr(2, "192.0.2.6"),
            addr(4, "203.0.113.6"),
            addr(4, "192.0.2.66"),
        ],
        routes=[(V4, 2), (V4, 4)],
    )
    result = plan(policy, state, True, [], frozenset())
    assert set(result.add) == {
        new("192.0.2.6", ETH0, SUBFLOW),
        new("198.51.100.6", ETH0, SUBFLOW, BACKUP),
        new("203.0.113.6", wlan, SIGNAL),
    }


def test_cap_of_eight_prefers_every_links_first_address() -> None:
    # nmp-global-tracker.c: priority 100-n per link and family, ties in tracking order.
    links = [Link(index, f"eth{index}", up=True) for index in range(2, 7)]
    addresses = [
        addr(link.ifindex, f"198.51.100.{link.ifindex}{n}") for link in links for n in (1, 2)
    ]
    state = net(links=links, addresses=addresses, routes=[(V4, link.ifindex) for link in links])
    result = plan(NM_DEFAULT, state, True, [], frozenset())
    assert added(result) == [
        "198.51.100.21",
        "198.51.100.31",
        "198.51.100.41",
        "198.51.100.51",
        "198.51.100.61",
        "198.51.100.22",
        "198.51.100.32",
        "198.51.100.42",
    ]
    assert [(str(left.address), left.reason) for left in result.left_out] == [
        ("198.51.100.52", "over the kernel's limit of 8 endpoints"),
        ("198.51.100.62", "over the kernel's limit of 8 endpoints"),
    ]


def test_the_cap_counts_endpoints_of_others() -> None:
    foreign = [ep(f"203.0.113.{n}", SIGNAL, id=n, ifindex=0) for n in range(1, 8)]
    state = net(addresses=[addr(2, "198.51.100.1"), addr(2, "198.51.100.2")])
    result = plan(NM_DEFAULT, state, True, foreign, frozenset())
    assert added(result) == ["198.51.100.1"]
    assert result.remove == ()


def test_an_address_on_two_links_is_configured_once() -> None:
    state = net(
        addresses=[addr(2, "198.51.100.1"), addr(3, "198.51.100.1")], routes=[(V4, 2), (V4, 3)]
    )
    result = plan(NM_DEFAULT, state, True, [], frozenset())
    assert result.add == (new("198.51.100.1", ETH0),)
    assert result.left_out == (LeftOut(ip("198.51.100.1"), "eth1", "already used on eth0"),)


def test_endpoints_of_others_are_never_removed_nor_changed() -> None:
    state = net(addresses=[addr(2, "198.51.100.1"), addr(2, "198.51.100.2")])
    theirs = [
        ep("198.51.100.1", SIGNAL, id=7),  # same address netpathd would want
        ep("::ffff:198.51.100.2", SUBFLOW, BACKUP, id=8),  # v4-mapped is the same to the kernel
        ep("203.0.113.9", SUBFLOW, id=9, ifindex=3),  # elsewhere
    ]
    result = plan(NM_DEFAULT, state, True, theirs, frozenset())
    assert result.add == result.remove == () and result.change == ()
    assert [left.reason for left in result.left_out] == [
        "held by endpoint id 7, which netpathd did not add",
        "held by endpoint id 8, which netpathd did not add",
    ]


def test_endpoints_with_a_port_are_never_touched_even_if_the_address_is_owned() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    listener = ep("198.51.100.1", SIGNAL, id=5, port=5000)
    result = plan(NM_DEFAULT, state, True, [listener], owned("198.51.100.1"))
    assert result.remove == ()
    assert result.add == (new("198.51.100.1", ETH0),)  # port endpoints do not clash


def test_an_implicit_endpoint_is_taken_over_first() -> None:
    state = net(addresses=[addr(2, "198.51.100.1"), addr(2, "198.51.100.2")])
    implicit = ep("198.51.100.2", IMPLICIT, id=9, ifindex=0)
    result = plan(NM_DEFAULT, state, True, [implicit], frozenset())
    assert added(result) == ["198.51.100.2", "198.51.100.1"]


def test_an_implicit_endpoint_cannot_be_taken_over_in_a_full_table() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    kernel = [ep(f"203.0.113.{n}", SIGNAL, id=n, ifindex=0) for n in range(1, 8)]
    kernel.append(ep("198.51.100.1", IMPLICIT, id=8, ifindex=0))
    result = plan(NM_DEFAULT, state, True, kernel, frozenset())
    assert result.add == ()
    assert "no free slot" in result.left_out[0].reason


def test_the_list_is_cut_at_the_first_misfit_so_the_choice_survives_applying() -> None:
    # Skipping over 198.51.100.3 to take over the implicit 198.51.100.2 (free of
    # cost) would free a slot once applied, and the next plan would undo it.
    state = net(
        addresses=[addr(2, "198.51.100.1"), addr(2, "198.51.100.2"), addr(3, "198.51.100.3")],
        routes=[(V4, 2), (V4, 3)],
    )
    kernel = [ep(f"203.0.113.{n}", SIGNAL, id=n, ifindex=0) for n in range(1, 7)]
    kernel.append(ep("198.51.100.2", IMPLICIT, id=7, ifindex=0))
    result = plan(NM_DEFAULT, state, True, kernel, frozenset())
    assert added(result) == ["198.51.100.1"]
    assert [str(left.address) for left in result.left_out] == ["198.51.100.3", "198.51.100.2"]
    table, _, _ = apply(result, kernel, Limits(2, 0), {})
    assert plan(NM_DEFAULT, state, True, table, result.owned).empty


def test_backup_changes_in_place_and_signal_changes_by_remove_and_add() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    mine = ep("198.51.100.1", SUBFLOW, id=3)
    backup = AutoPolicy(default=AutoRule(flags=frozenset({SUBFLOW, BACKUP})))
    result = plan(backup, state, True, [mine], owned("198.51.100.1"))
    assert result.change == (FlagChange(mine, frozenset({SUBFLOW, BACKUP})),)
    assert result.add == result.remove == ()

    signal = AutoPolicy(default=AutoRule(flags=frozenset({SIGNAL})))
    result = plan(signal, state, True, [mine], owned("198.51.100.1"))
    assert result.remove == (mine,)
    assert result.add == (new("198.51.100.1", ETH0, SIGNAL),)


def test_an_address_that_moved_to_another_link_is_re_added_there() -> None:
    state = net(addresses=[addr(3, "198.51.100.1")], routes=[(V4, 3)])
    mine = ep("198.51.100.1", SUBFLOW, id=3, ifindex=2)
    result = plan(NM_DEFAULT, state, True, [mine], owned("198.51.100.1"))
    assert result.remove == (mine,)
    assert result.add == (new("198.51.100.1", ETH1),)


def test_forgotten_owned_keys_are_dropped_without_a_removal() -> None:
    result = plan(NM_DEFAULT, net(), True, [], owned("198.51.100.1"))
    assert result.empty
    assert result.owned == frozenset()


# --- limits ----------------------------------------------------------------------------------

FOLLOW = AutoPolicy(limits=LimitsMode.FOLLOW)


def test_limits_follow_covers_the_endpoints() -> None:
    state = net(addresses=[addr(2, f"198.51.100.{n}") for n in range(1, 4)])
    result = plan(FOLLOW, state, True, [], frozenset(), limits=Limits(2, 0))
    assert result.limits == Limits(subflows=3, add_addr_accepted=3)


def test_signal_endpoints_raise_subflows_only() -> None:
    policy = AutoPolicy(default=AutoRule(flags=frozenset({SIGNAL})), limits=LimitsMode.FOLLOW)
    state = net(addresses=[addr(2, f"198.51.100.{n}") for n in range(1, 4)])
    assert plan(policy, state, True, [], frozenset(), limits=Limits(0, 1)).limits == Limits(3, 1)


def test_limits_never_go_above_eight_nor_below_the_admins() -> None:
    links = [Link(index, f"eth{index}", up=True) for index in range(2, 12)]
    state = net(
        links=links,
        addresses=[addr(link.ifindex, f"198.51.100.{link.ifindex}") for link in links],
        routes=[(V4, link.ifindex) for link in links],
    )
    assert plan(FOLLOW, state, True, [], frozenset(), limits=Limits(0, 0)).limits == Limits(8, 8)
    assert plan(FOLLOW, state, True, [], frozenset(), limits=Limits(8, 8)).limits is None
    few = net(addresses=[addr(2, "198.51.100.1")])
    assert plan(FOLLOW, few, True, [], frozenset(), limits=Limits(6, 4)).limits is None
    assert plan(FOLLOW, few, True, [], frozenset(), limits=Limits(0, 4)).limits == Limits(1, 4)


def test_limits_keep_or_unknown_plans_nothing() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    assert plan(NM_DEFAULT, state, True, [], frozenset(), limits=Limits(0, 0)).limits is None
    assert plan(FOLLOW, state, True, [], frozenset(), limits=None).limits is None


# --- rp_filter, as _rp_filter_update() -------------------------------------------------------


def test_rp_filter_strict_becomes_loose_where_ipv4_endpoints_are() -> None:
    state = net(
        addresses=[addr(2, "198.51.100.1"), addr(3, "2001:db8::1")], routes=[(V4, 2), (V6, 3)]
    )
    result = plan(NM_DEFAULT, state, True, [], frozenset(), rp_filter={"eth0": 1, "eth1": 1})
    assert result.rp_filter == (RpFilterWrite("eth0", 2),)  # eth1 has only IPv6
    assert result.rp_touched == {"eth0"}


def test_rp_filter_other_values_are_left_alone() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    for value in (0, 2):
        result = plan(NM_DEFAULT, state, True, [], frozenset(), rp_filter={"eth0": value})
        assert result.rp_filter == () and result.rp_touched == frozenset()


def test_rp_filter_is_set_once_and_restored_only_if_still_loose() -> None:
    state = net(addresses=[addr(2, "198.51.100.1")])
    touched = frozenset({"eth0"})
    # someone put it back to strict while netpathd needs it: NetworkManager sets it only once
    again = plan(
        NM_DEFAULT, state, True, [], frozenset(), rp_filter={"eth0": 1}, rp_touched=touched
    )
    assert again.rp_filter == () and again.rp_touched == touched

    gone = net()
    restore = plan(
        NM_DEFAULT, gone, True, [], frozenset(), rp_filter={"eth0": 2}, rp_touched=touched
    )
    assert restore.rp_filter == (RpFilterWrite("eth0", 1),)
    assert restore.rp_touched == frozenset()

    changed = plan(
        NM_DEFAULT, gone, True, [], frozenset(), rp_filter={"eth0": 0}, rp_touched=touched
    )
    assert changed.rp_filter == () and changed.rp_touched == frozenset()

    unread = plan(NM_DEFAULT, gone, True, [], frozenset(), rp_filter={}, rp_touched=touched)
    assert unread.rp_filter == () and unread.rp_touched == touched


def test_rp_filter_mark_of_a_vanished_link_is_dropped() -> None:
    result = plan(
        NM_DEFAULT,
        net(links=[ETH1]),
        True,
        [],
        frozenset(),
        rp_filter={},
        rp_touched=frozenset({"eth0"}),
    )
    assert result.rp_filter == () and result.rp_touched == frozenset()


# --- idempotence -----------------------------------------------------------------------------


def test_applying_then_planning_again_gives_an_empty_plan() -> None:
    state = net(
        addresses=[addr(2, "198.51.100.1"), addr(2, "2001:db8::1"), addr(3, "203.0.113.1")],
        routes=[(V4, 2), (V6, 2), (V4, 3)],
    )
    kernel = [ep("198.51.100.9", SUBFLOW, id=1), ep("203.0.113.1", IMPLICIT, id=2, ifindex=0)]
    rp = {"eth0": 1, "eth1": 1}
    first = plan(
        FOLLOW, state, True, kernel, owned("198.51.100.9"), limits=Limits(2, 0), rp_filter=rp
    )
    table, limits, rp = apply(first, kernel, Limits(2, 0), rp)
    second = plan(
        FOLLOW,
        state,
        True,
        table,
        first.owned,
        limits=limits,
        rp_filter=rp,
        rp_touched=first.rp_touched,
    )
    assert not first.empty
    assert second.empty, second
    assert (second.owned, second.rp_touched) == (first.owned, first.rp_touched)


# --- properties ------------------------------------------------------------------------------

NAMES = {2: "eth0", 3: "eth1", 4: "wlan0", 5: "wwan0"}
POOL = [
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.3",
    "203.0.113.1",
    "203.0.113.2",
    "169.254.1.1",
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::1",
    "fe80::1",
    "fd00::1",
]
EXTRA = [
    *(f"192.0.2.{n}" for n in range(50, 57)),
    "2001:db8:ff::1",
    "::ffff:198.51.100.1",
    "::ffff:203.0.113.2",
]
FLAG_SETS = [
    DISABLED,
    frozenset({SUBFLOW}),
    frozenset({SUBFLOW, BACKUP}),
    frozenset({SUBFLOW, FULLMESH}),
    frozenset({SIGNAL}),
    frozenset({SIGNAL, BACKUP}),
    frozenset({SIGNAL, SUBFLOW}),
]

maybe_bool = st.none() | st.booleans()
rules = st.builds(
    AutoRule,
    flags=st.none() | st.sampled_from(FLAG_SETS),
    also_without_default_route=maybe_bool,
    also_without_sysctl=maybe_bool,
)
policies = st.builds(
    AutoPolicy,
    default=rules,
    interfaces=st.lists(
        st.tuples(st.sampled_from(["eth*", "eth1", "wlan0", "w*"]), rules),
        max_size=3,
        unique_by=lambda item: item[0],
    ).map(tuple),
    prefixes=st.lists(
        st.tuples(
            st.sampled_from(
                ["198.51.100.0/24", "198.51.100.2/32", "2001:db8::/64", "203.0.113.0/24"]
            ).map(ipaddress.ip_network),
            rules,
        ),
        max_size=3,
        unique_by=lambda item: item[0],
    ).map(tuple),
    limits=st.sampled_from(LimitsMode),
)


World = tuple[NetState, list[Endpoint], frozenset[OwnedKey], dict[str, int], frozenset[str]]


@st.composite
def worlds(draw: st.DrawFn, crowded: bool = False) -> World:
    """Links, addresses, routes, a kernel table and netpathd's memory; ``crowded`` fills up."""
    links = [
        Link(index, name, crowded or draw(st.integers(0, 3)) > 0) for index, name in NAMES.items()
    ]
    addresses = []
    for text in draw(st.lists(st.sampled_from(POOL), min_size=6 if crowded else 0, max_size=10)):
        value = ip(text)
        scope = 253 if value.is_link_local else 0
        index = draw(st.sampled_from(list(NAMES)))
        addresses.append(Address(index, value, 24, scope, not crowded and draw(st.booleans())))
    routes = draw(st.sets(st.tuples(st.sampled_from([V4, V6]), st.sampled_from(list(NAMES)))))
    state = NetState(
        links={link.ifindex: link for link in links},
        addresses=frozenset(addresses),
        default_routes=frozenset(DefaultRoute(fam, index, 100) for fam, index in routes),
    )
    table: list[Endpoint] = []
    pool = st.sampled_from(POOL + EXTRA)
    least = draw(st.integers(5 if crowded else 0, 8))
    for text in draw(st.lists(pool, min_size=least, max_size=8, unique=True)):
        port = draw(st.sampled_from([0, 0, 0, 4000]))
        same = [e for e in table if _same(e.address) == _same(ip(text)) and e.port == port]
        if same:
            continue
        flags = draw(st.sampled_from([*FLAG_SETS[1:], *[frozenset({IMPLICIT})] * 4]))
        if port:
            flags = frozenset({SIGNAL})
        table.append(
            Endpoint(len(table) + 1, ip(text), port, "", draw(st.sampled_from([0, *NAMES])), flags)
        )
    claimed = draw(st.sets(st.sampled_from(POOL + EXTRA)))
    own = frozenset((ip(text), 0) for text in claimed)
    rp = {name: draw(st.sampled_from([0, 1, 2])) for name in NAMES.values()}
    touched = frozenset(draw(st.sets(st.sampled_from([*NAMES.values(), "gone0"]))))
    return state, table, own, rp, touched


@settings(max_examples=600, deadline=None)
@given(policies, worlds(), st.booleans(), st.integers(0, 8), st.integers(0, 8))
def test_plans_are_safe_and_idempotent(
    policy: AutoPolicy, world: World, enabled: bool, subflows: int, accepted: int
) -> None:
    check(policy, world, enabled, Limits(subflows, accepted))


EAGER = AutoPolicy(
    default=AutoRule(also_without_default_route=True, also_without_sysctl=True),
    limits=LimitsMode.FOLLOW,
)


@settings(max_examples=400, deadline=None)
@given(worlds(crowded=True))
def test_plans_in_a_crowded_table_are_safe_and_idempotent(world: World) -> None:
    check(EAGER, world, True, Limits(2, 0))


def check(policy: AutoPolicy, world: World, enabled: bool, limits: Limits) -> None:
    """Never touch what is not netpathd's, never overfill, and reach a fixed point in one step."""
    state, table, own, rp, touched = world
    first = plan(
        policy, state, enabled, table, own, limits=limits, rp_filter=rp, rp_touched=touched
    )

    for endpoint in [*first.remove, *(change.endpoint for change in first.change)]:
        assert (endpoint.address, endpoint.port) in own
        assert endpoint.port == 0 and IMPLICIT not in endpoint.flags
    assert all(endpoint.id == 0 and endpoint.port == 0 for endpoint in first.add)
    assert first.limits is None or (
        limits.subflows <= first.limits.subflows <= 8
        and limits.add_addr_accepted <= first.limits.add_addr_accepted <= 8
    )

    after, limits_after, rp_after = apply(first, table, limits, rp)  # raises if the kernel would
    assert len(after) <= MAX_ENDPOINTS
    assert len(first.owned) <= MAX_ENDPOINTS
    untouched = [e for e in table if e not in first.remove and (e.address, e.port) not in own]
    assert all(e in after or IMPLICIT in e.flags for e in untouched)

    second = plan(
        policy,
        state,
        enabled,
        after,
        first.owned,
        limits=limits_after,
        rp_filter=rp_after,
        rp_touched=first.rp_touched,
    )
    assert second.empty, second
    assert second.owned == first.owned
    assert second.rp_touched == first.rp_touched
