"""The MPTCP path manager rules, without a kernel."""

from __future__ import annotations

import ipaddress
import re

import pytest

from netpathd.errors import AlreadyExists, InvalidArgument
from netpathd.model.mptcp import (
    Endpoint,
    EndpointFlag,
    Limits,
    flags_from_word,
    flags_to_word,
    mixed_families_warning,
    parse_address,
    parse_flags,
    refuse_conflicts,
    set_flags,
    validate_endpoint,
    validate_endpoint_id,
    validate_limits,
)

SIGNAL, SUBFLOW, BACKUP, FULLMESH = (
    EndpointFlag.SIGNAL,
    EndpointFlag.SUBFLOW,
    EndpointFlag.BACKUP,
    EndpointFlag.FULLMESH,
)


def endpoint(address: str, *flags: EndpointFlag, id: int = 0, port: int = 0) -> Endpoint:
    return Endpoint(id=id, address=ipaddress.ip_address(address), port=port, flags=frozenset(flags))


def test_flags_use_kernel_names_and_bits() -> None:
    assert parse_flags(["signal", "backup"]) == {SIGNAL, BACKUP}
    assert flags_to_word({SIGNAL, SUBFLOW, BACKUP, FULLMESH}) == 0b1111
    assert EndpointFlag.LAMINAR.bit == 1 << 5
    assert flags_from_word(0b10110 | 1 << 20) == {SUBFLOW, BACKUP, EndpointFlag.IMPLICIT}


def test_unknown_and_kernel_only_flags_are_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="'turbo'"):
        parse_flags(["subflow", "turbo"])
    with pytest.raises(InvalidArgument, match="'implicit'"):
        parse_flags(["implicit"])


def test_a_mistyped_flag_gets_a_suggestion() -> None:
    with pytest.raises(InvalidArgument, match=re.escape("; did you mean 'signal'?")):
        parse_flags(["sgnal"])


def test_invalid_address_text_is_named() -> None:
    with pytest.raises(InvalidArgument, match=re.escape("'192.0.2.256'")):
        parse_address("192.0.2.256")
    assert parse_address("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


@pytest.mark.parametrize("endpoint_id", [-1, 256])
def test_id_outside_u8_is_refused(endpoint_id: int) -> None:
    with pytest.raises(InvalidArgument, match=f"{endpoint_id} outside 0..255"):
        validate_endpoint(endpoint("192.0.2.1", SUBFLOW, id=endpoint_id))


def test_id_zero_means_kernel_chooses_on_add_only() -> None:
    validate_endpoint(endpoint("192.0.2.1", SUBFLOW, id=0))
    validate_endpoint_id(255, allow_zero=False)
    with pytest.raises(InvalidArgument, match="initial subflow"):
        validate_endpoint_id(0, allow_zero=False)


def test_signal_with_fullmesh_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="'signal' and 'fullmesh'"):
        validate_endpoint(endpoint("192.0.2.1", SIGNAL, FULLMESH))
    validate_endpoint(endpoint("192.0.2.1", SUBFLOW, FULLMESH))


def test_port_needs_signal_without_subflow_and_a_valid_range() -> None:
    validate_endpoint(endpoint("192.0.2.1", SIGNAL, port=4321))
    with pytest.raises(InvalidArgument, match="port 4321 requires"):
        validate_endpoint(endpoint("192.0.2.1", SUBFLOW, port=4321))
    with pytest.raises(InvalidArgument, match="port 4321 requires"):
        validate_endpoint(endpoint("192.0.2.1", SIGNAL, SUBFLOW, port=4321))
    with pytest.raises(InvalidArgument, match="port 65536 outside"):
        validate_endpoint(endpoint("192.0.2.1", SIGNAL, port=65536))


def test_implicit_cannot_be_requested() -> None:
    with pytest.raises(InvalidArgument, match="implicit"):
        validate_endpoint(endpoint("192.0.2.1", EndpointFlag.IMPLICIT))


@pytest.mark.parametrize(
    ("limits", "named"),
    [(Limits(9, 0), "subflows 9"), (Limits(0, 9), "add_addr_accepted 9"), (Limits(-1, 0), "-1")],
)
def test_limits_above_the_kernel_maximum_are_refused(limits: Limits, named: str) -> None:
    with pytest.raises(InvalidArgument, match=f"{named} outside 0..8"):
        validate_limits(limits)


def test_limits_at_the_edges_are_fine() -> None:
    validate_limits(Limits(0, 0))
    validate_limits(Limits(8, 8))


def test_set_flags_sends_both_changeable_flags_and_keeps_the_rest() -> None:
    current = endpoint("192.0.2.1", SUBFLOW, FULLMESH, id=3)
    assert set_flags(current, frozenset({BACKUP, FULLMESH})) == flags_to_word(
        {SUBFLOW, BACKUP, FULLMESH}
    )
    assert set_flags(current, frozenset({BACKUP})) == flags_to_word({SUBFLOW, BACKUP})
    assert set_flags(current, frozenset()) == flags_to_word({SUBFLOW})


def test_set_flags_accepts_only_backup_and_fullmesh() -> None:
    current = endpoint("192.0.2.1", SUBFLOW, id=3)
    with pytest.raises(InvalidArgument, match="signal, subflow cannot be changed"):
        set_flags(current, frozenset({SIGNAL, SUBFLOW}))


def test_set_flags_refuses_fullmesh_on_a_signal_endpoint() -> None:
    with pytest.raises(InvalidArgument, match="endpoint 4 has 'signal'"):
        set_flags(endpoint("192.0.2.1", SIGNAL, id=4), frozenset({FULLMESH}))


def test_mixed_families_warning() -> None:
    existing = [endpoint("192.0.2.1", SUBFLOW, id=1), endpoint("198.51.100.1", SIGNAL, id=2)]
    assert mixed_families_warning(endpoint("203.0.113.1", SUBFLOW), existing) is None
    assert mixed_families_warning(endpoint("2001:db8::1", SUBFLOW), []) is None
    warning = mixed_families_warning(endpoint("2001:db8::1", SUBFLOW), existing)
    assert warning is not None
    assert "2001:db8::1 is IPv6 but 192.0.2.1, 198.51.100.1 are IPv4" in warning


def test_duplicates_are_refused_before_the_kernel_is_asked() -> None:
    table = [
        endpoint("192.0.2.1", SUBFLOW, id=1),
        endpoint("192.0.2.2", SIGNAL, id=2, port=8080),
        endpoint("192.0.2.3", EndpointFlag.IMPLICIT, id=3),
    ]
    with pytest.raises(AlreadyExists, match=r"address 192\.0\.2\.1 already exists \(id 1\)"):
        refuse_conflicts(endpoint("192.0.2.1", SIGNAL), table)
    with pytest.raises(AlreadyExists, match=r"192\.0\.2\.2 port 8080 already exists"):
        refuse_conflicts(endpoint("192.0.2.2", SIGNAL, port=8080), table)
    with pytest.raises(AlreadyExists, match=r"id 2 is already in use by 192\.0\.2\.2"):
        refuse_conflicts(endpoint("192.0.2.9", SUBFLOW, id=2), table)
    refuse_conflicts(endpoint("192.0.2.2", SIGNAL), table)  # another port: another key
    refuse_conflicts(endpoint("192.0.2.3", SUBFLOW), table)  # the kernel replaces implicit ones
    full = [endpoint(f"192.0.2.{n}", SUBFLOW, id=n) for n in range(1, 8)]
    refuse_conflicts(endpoint("198.51.100.1", SUBFLOW), full)
    full.append(endpoint("198.51.100.8", EndpointFlag.IMPLICIT, id=8))
    with pytest.raises(InvalidArgument, match="at most 8 endpoints per namespace"):
        refuse_conflicts(endpoint("198.51.100.1", SUBFLOW), full)
    refuse_conflicts(endpoint("198.51.100.8", SUBFLOW), full)  # takes the implicit one's place
