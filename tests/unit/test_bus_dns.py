"""The D-Bus face of the DNS settings: exactly the documented variant type per key."""

from __future__ import annotations

import pytest
from dbus_fast import Variant

from netpathd.bus.dns import unwrap
from netpathd.errors import InvalidArgument
from netpathd.model.dns_settings import SETTINGS_SIGNATURES


@pytest.mark.parametrize(
    ("key", "variant"),
    [
        ("ipv4.dns-priority", Variant("u", 5)),
        ("ipv4.dns-priority", Variant("x", -5)),
        ("ipv6.dns-priority", Variant("y", 5)),
        ("connection.interface-name", Variant("g", "s")),
        ("connection.type", Variant("o", "/ethernet")),
        ("ipv4.dns", Variant("ay", b"\xc0\x00\x02\x35")),
    ],
)
def test_a_variant_of_another_type_is_refused_naming_both(key: str, variant: Variant) -> None:
    with pytest.raises(InvalidArgument) as caught:
        unwrap({key: variant})
    assert caught.value.message == (
        f"{key}: must be of type {SETTINGS_SIGNATURES[key]!r}, got {variant.signature!r}"
    )


def test_documented_types_and_unknown_keys_pass_to_the_model() -> None:
    settings = {
        "ipv4.dns-priority": Variant("i", -10),
        "ipv4.dns": Variant("as", ["192.0.2.53"]),
        "ipv4.gateway": Variant("s", "192.0.2.1"),  # refused by name by merge_settings
    }
    assert unwrap(settings) == {
        "ipv4.dns-priority": -10,
        "ipv4.dns": ["192.0.2.53"],
        "ipv4.gateway": "192.0.2.1",
    }
