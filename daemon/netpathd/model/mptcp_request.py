"""What an endpoint change asked over D-Bus must satisfy, before anything else happens.

Pure, so that the bus twin can refuse a request that cannot work before anyone is
asked for authorization (the house order: locate, validate, authorize, apply), and
MptcpManager applies the same rules again when it carries the request out.
"""

from __future__ import annotations

from collections.abc import Iterable

from netpathd.model.mptcp import (
    EndpointFlag,
    parse_address,
    parse_flags,
    validate_changeable,
    validate_endpoint,
    validate_endpoint_id,
)
from netpathd.model.mptcp_config import EndpointConfig


def endpoint_request(
    address: str, flags: Iterable[str], interface: str, port: int, endpoint_id: int
) -> EndpointConfig:
    """AddEndpoint's arguments as a configured endpoint; InvalidArgument says what is wrong."""
    validate_endpoint_id(endpoint_id, allow_zero=True)
    config = EndpointConfig(
        parse_address(address), port, interface, endpoint_id, parse_flags(flags)
    )
    validate_endpoint(config.to_endpoint())
    return config


def flags_request(endpoint_id: int, flags: Iterable[str]) -> frozenset[EndpointFlag]:
    """SetEndpointFlags' arguments: an existing id's range and only changeable flags."""
    validate_endpoint_id(endpoint_id, allow_zero=False)
    wanted = parse_flags(flags)
    validate_changeable(wanted)
    return wanted
