"""The MPTCP file format, its layers and the plan against the kernel: pure, no kernel."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpathd.errors import ConfigError
from netpathd.model.mptcp import Endpoint, EndpointFlag, Limits
from netpathd.model.mptcp_config import (
    EndpointConfig,
    MptcpConfig,
    first_mixed_families_warning,
    flag_names,
    merge,
    parse_config,
    plan_endpoints,
    render_config,
    scalar_targets,
    spend_restore,
)

SIGNAL, SUBFLOW, BACKUP, FULLMESH, IMPLICIT = (
    EndpointFlag.SIGNAL, EndpointFlag.SUBFLOW, EndpointFlag.BACKUP, EndpointFlag.FULLMESH,
    EndpointFlag.IMPLICIT,
)  # fmt: skip
A = ipaddress.ip_address("192.0.2.1")
B = ipaddress.ip_address("198.51.100.1")
C = ipaddress.ip_address("2001:db8::1")

EXAMPLE = """\
# the README's example
[mptcp]
enabled = yes
subflows = 2
add_addr_accepted = 1

[endpoint "198.51.100.1"]
flags = signal, backup
interface = eth1

[endpoint "198.51.100.1"]
flags = signal
port = 4321
id = 9
"""


def test_parse_example() -> None:
    config = parse_config(EXAMPLE, "mptcp.conf")
    assert config == MptcpConfig(
        enabled=True,
        subflows=2,
        add_addr_accepted=1,
        endpoints=(
            EndpointConfig(B, 0, "eth1", 0, frozenset({SIGNAL, BACKUP})),
            EndpointConfig(B, 4321, "", 9, frozenset({SIGNAL})),
        ),
    )


def test_render_round_trip_and_header() -> None:
    config = parse_config(EXAMPLE, "mptcp.conf")
    text = render_config(config, "Managed by netpathd.\nDo not edit.")
    assert text.startswith("# Managed by netpathd.\n# Do not edit.\n\n[mptcp]\nenabled = yes\n")
    assert "flags = signal backup\ninterface = eth1\n" in text
    assert parse_config(text, "x") == config
    assert parse_config(render_config(MptcpConfig(), "h"), "x") == MptcpConfig()


ERRORS = [
    ("[mptcp]\nsubflows = 9\n", 2, "subflows must be between 0 and 8, got 9"),
    ("[mptcp]\nenabled = maybe\n", 2, "enabled must be a boolean"),
    ("[mptcp]\nturbo = 1\n", 2, "unknown key 'turbo' in [mptcp]"),
    ("[mptcp]\n[mptcp]\n", 2, "[mptcp] is already on line 1"),
    ('[endpoint "192.0.2.300"]\n', 1, "invalid IP address '192.0.2.300'"),
    ('[endpoint "192.0.2.1"]\nflags = turbo\n', 2, "unknown endpoint flag 'turbo'"),
    ('[endpoint "192.0.2.1"]\nflags = implicit\n', 2, "set by the kernel"),
    ('[endpoint "192.0.2.1"]\nflags = signal fullmesh\n', 1, "cannot be combined"),
    ('[endpoint "192.0.2.1"]\nport = 80\n', 1, "port 80 requires the 'signal' flag"),
    ('[endpoint "192.0.2.1"]\nid = 256\n', 2, "id must be between 0 and 255, got 256"),
    ('[endpoint "192.0.2.1"]\n[endpoint "192.0.2.1"]\n', 2, "192.0.2.1 is defined twice"),
    ('[endpoint "192.0.2.1"]\nid = 3\n[endpoint "192.0.2.2"]\nid = 3\n', 3,
     "id 3 is already used on line 1"),
    ("[endpoint]\n", 1, "unknown section [endpoint]"),
    ("[limits]\n", 1, "unknown section [limits]"),
    ("subflows = 1\n", 1, "outside of any section"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "reason"), ERRORS)
def test_errors_name_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(text, "/etc/netpathd/mptcp.conf")
    assert error.value.line == line
    assert reason in error.value.message
    assert error.value.message.startswith(f"/etc/netpathd/mptcp.conf:{line}: ")


def test_merge_later_layers_win_per_setting_and_endpoint() -> None:
    admin = MptcpConfig(
        enabled=True,
        subflows=4,
        endpoints=(EndpointConfig(A, flags=frozenset({SUBFLOW})), EndpointConfig(B)),
    )
    state = MptcpConfig(subflows=2, endpoints=(EndpointConfig(A, flags=frozenset({SIGNAL})),))
    runtime = MptcpConfig(add_addr_accepted=3, endpoints=(EndpointConfig(C),))
    merged = merge(admin, state, runtime)
    assert (merged.enabled, merged.subflows, merged.add_addr_accepted) == (True, 2, 3)
    assert merged.endpoints == (
        EndpointConfig(A, flags=frozenset({SIGNAL})),
        EndpointConfig(B),
        EndpointConfig(C),
    )


def kernel(endpoint_id: int, address: object, *flags: EndpointFlag, **kw: object) -> Endpoint:
    return Endpoint(id=endpoint_id, address=address, flags=frozenset(flags), **kw)  # type: ignore[arg-type]


def test_plan_adds_only_what_is_missing() -> None:
    desired = [EndpointConfig(A, flags=frozenset({SUBFLOW})), EndpointConfig(B, id=7)]
    actual = [kernel(3, A, SUBFLOW)]
    plan = plan_endpoints(desired, actual, [])
    assert plan.add == (EndpointConfig(B, id=7),)
    assert not plan.remove
    assert not plan.change_flags
    assert not plan_endpoints(desired, [*actual, kernel(7, B)], [])


def test_plan_changes_backup_and_fullmesh_in_place() -> None:
    desired = [EndpointConfig(A, flags=frozenset({SUBFLOW, FULLMESH}))]
    plan = plan_endpoints(desired, [kernel(3, A, SUBFLOW, BACKUP)], [])
    assert plan.change_flags == ((3, frozenset({FULLMESH})),)
    assert not plan.add
    assert not plan.remove


@pytest.mark.parametrize(
    "actual",
    [
        kernel(3, A, SIGNAL),  # signal/subflow cannot be changed
        kernel(3, A, SUBFLOW, interface="eth9", ifindex=9),  # nor the device
        kernel(4, A, SUBFLOW),  # nor a chosen id
        kernel(3, A, IMPLICIT),  # the kernel's own entry
    ],
)
def test_plan_replaces_what_set_flags_cannot_fix(actual: Endpoint) -> None:
    wanted = EndpointConfig(A, flags=frozenset({SUBFLOW}), id=3)
    plan = plan_endpoints([wanted], [actual], [])
    assert plan.remove == (actual,)
    assert plan.add == (wanted,)


def test_plan_removes_only_stale_endpoints_it_applied() -> None:
    ours, foreign, implicit = kernel(1, A, SUBFLOW), kernel(2, B, SIGNAL), kernel(3, C, IMPLICIT)
    plan = plan_endpoints([], [ours, foreign, implicit], [(A, 0), (C, 0)])
    assert plan.remove == (ours,)


def test_plan_matches_by_address_and_port() -> None:
    desired = [EndpointConfig(B, port=4321, flags=frozenset({SIGNAL}))]
    plan = plan_endpoints(desired, [kernel(1, B, SIGNAL)], [(B, 0)])
    assert plan.add == (desired[0],)
    assert plan.remove == (kernel(1, B, SIGNAL),)


flags_strategy = st.frozensets(st.sampled_from([SUBFLOW, BACKUP, FULLMESH]))


@given(
    st.lists(
        st.tuples(st.integers(1, 254), flags_strategy, st.booleans()),
        unique_by=lambda item: item[0],
        max_size=8,
    )
)
def test_applying_a_plan_reaches_the_desired_table(
    items: list[tuple[int, frozenset[EndpointFlag], bool]],
) -> None:
    """Simulate the kernel: after remove, change and add, every desired endpoint is there
    exactly once with its flags, and a second plan has nothing to do."""
    desired = [
        EndpointConfig(ipaddress.ip_address(f"192.0.2.{host}"), flags=flags)
        for host, flags, _ in items
    ]
    actual = [
        kernel(index + 1, ipaddress.ip_address(f"192.0.2.{host}"), *(flags ^ {BACKUP}))
        for index, (host, flags, present) in enumerate(items)
        if present
    ]
    plan = plan_endpoints(desired, actual, [])
    table = {e.id: e for e in actual if e not in plan.remove}
    for endpoint_id, changeable in plan.change_flags:
        current = table[endpoint_id]
        table[endpoint_id] = kernel(
            endpoint_id, current.address, *((current.flags - {BACKUP, FULLMESH}) | changeable)
        )
    for index, config in enumerate(plan.add):
        table[100 + index] = kernel(100 + index, config.address, *config.flags)
    assert sorted((str(e.address), e.flags) for e in table.values()) == sorted(
        (str(d.address), d.flags) for d in desired
    )
    assert not plan_endpoints(desired, list(table.values()), [])


def test_scalar_targets_prefer_configuration_then_restore_then_kernel() -> None:
    kernel_limits = Limits(2, 0)
    assert scalar_targets(MptcpConfig(), MptcpConfig(), kernel_limits) == (None, kernel_limits)
    restore = MptcpConfig(enabled=True, subflows=3, add_addr_accepted=1)
    assert scalar_targets(MptcpConfig(), restore, kernel_limits) == (True, Limits(3, 1))
    desired = MptcpConfig(enabled=False, subflows=8)
    assert scalar_targets(desired, restore, kernel_limits) == (False, Limits(8, 1))


def test_restore_values_are_spent_once_no_runtime_change_needs_them() -> None:
    restore = MptcpConfig(enabled=True, subflows=3, add_addr_accepted=1)
    assert spend_restore(restore, MptcpConfig()) == MptcpConfig()
    kept = spend_restore(restore, MptcpConfig(subflows=5, add_addr_accepted=5))
    assert kept == MptcpConfig(subflows=3, add_addr_accepted=1)


def test_mixed_families_warning_names_both_addresses() -> None:
    assert first_mixed_families_warning([EndpointConfig(A), EndpointConfig(B)]) is None
    warning = first_mixed_families_warning([EndpointConfig(A), EndpointConfig(C)])
    assert warning is not None
    assert "2001:db8::1 is IPv6 but 192.0.2.1 is IPv4" in warning


def test_flag_names_are_in_ip_order_whatever_iterable_holds_them() -> None:
    """Each flag was looked up in a set built again from the iterable, so a generator
    was used up by the first lookup and the other flags went missing."""
    flags = [EndpointFlag.BACKUP, EndpointFlag.SUBFLOW, EndpointFlag.SIGNAL]
    assert flag_names(frozenset(flags)) == ["signal", "subflow", "backup"]
    assert flag_names(flag for flag in flags) == ["signal", "subflow", "backup"]
    assert flag_names([]) == []
