from __future__ import annotations

import ipaddress

import pytest

from netpathd.errors import InvalidArgument
from netpathd.model.mptcp import EndpointFlag
from netpathd.model.mptcp_request import endpoint_request, flags_request


def test_an_endpoint_request_becomes_its_configuration() -> None:
    config = endpoint_request("198.51.100.1", ["signal", "backup"], "e1", 8080, 3)
    assert config.address == ipaddress.ip_address("198.51.100.1")
    assert (config.port, config.interface, config.id) == (8080, "e1", 3)
    assert config.flags == {EndpointFlag.SIGNAL, EndpointFlag.BACKUP}


@pytest.mark.parametrize(
    ("address", "flags", "port", "endpoint_id"),
    [
        ("198.51.100.300", [], 0, 0),  # not an address
        ("198.51.100.1", ["bogus"], 0, 0),  # unknown flag
        ("198.51.100.1", ["signal", "fullmesh"], 0, 0),  # the kernel refuses the pair
        ("198.51.100.1", ["subflow"], 80, 0),  # a port needs signal
        ("198.51.100.1", [], 0, 256),  # ids are 1-255 (0: the kernel picks)
    ],
)
def test_impossible_endpoint_requests_are_refused(
    address: str, flags: list[str], port: int, endpoint_id: int
) -> None:
    with pytest.raises(InvalidArgument):
        endpoint_request(address, flags, "", port, endpoint_id)


def test_flag_changes_name_an_endpoint_and_only_changeable_flags() -> None:
    assert flags_request(3, ["backup"]) == {EndpointFlag.BACKUP}
    for endpoint_id, flags in ((0, ["backup"]), (3, ["signal"])):
        with pytest.raises(InvalidArgument):
            flags_request(endpoint_id, flags)
