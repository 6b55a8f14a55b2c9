"""RFC 8106 options as the kernel hands them over, and the expiry table."""

from __future__ import annotations

import math

import pytest

from netpathd.errors import ConfigError
from netpathd.model.ra_dns import (
    INFINITY,
    DnsOption,
    Kind,
    Malformed,
    RaDnsTable,
    parse_options,
)
from netpathd.model.ra_policy import RaPolicy
from netpathd.model.settings import parse_settings
from tests.support.ra import dnssl, rdnss


def test_several_servers_in_one_option_and_several_options() -> None:
    data = rdnss(["2001:db8::1", "2001:db8::2", "fe80::1"], 30) + dnssl(["a.example"], 60)
    assert list(parse_options(data)) == [
        DnsOption(Kind.SERVER, ("2001:db8::1", "2001:db8::2", "fe80::1"), 30),
        DnsOption(Kind.DOMAIN, ("a.example",), 60),
    ]


def test_dnssl_label_encoding_with_padding_and_case() -> None:
    option = dnssl(["Corp.Example", "x.lab.example"], INFINITY)
    assert len(option) % 8 == 0
    assert list(parse_options(option)) == [
        DnsOption(Kind.DOMAIN, ("corp.example", "x.lab.example"), INFINITY)
    ]


def test_other_option_types_are_passed_over() -> None:
    prefix_info = bytes([3, 4]) + bytes(30)
    assert list(parse_options(prefix_info + rdnss(["2001:db8::1"], 5))) == [
        DnsOption(Kind.SERVER, ("2001:db8::1",), 5)
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([25, 2, 0, 0, 0, 0, 0, 9]) + bytes(8), "RDNSS option of length 2"),
        (rdnss(["ff02::1"], 5), "unusable address ff02::1"),
        (
            bytes([31, 2, 0, 0, 0, 0, 0, 9, 3, ord("a"), ord("_"), ord("b"), 0, 0, 0, 0]),
            "not a host name",
        ),
        (bytes([31, 2, 0, 0, 0, 0, 0, 9, 9, ord("a"), 0, 0, 0, 0, 0, 0]), "label of length 9"),
        (
            bytes([31, 2, 0, 0, 0, 0, 0, 9, 1, ord("a"), 1, ord("b"), 1, ord("c"), 1, ord("d")]),
            "zero label",
        ),
        (bytes([31, 2, 0, 0, 0, 0, 0, 9]) + bytes(8), "without a usable domain"),
    ],
)
def test_malformed_options_are_reported_and_the_next_one_still_read(
    data: bytes, reason: str
) -> None:
    parsed = list(parse_options(data + rdnss(["2001:db8::9"], 5)))
    assert isinstance(parsed[0], Malformed)
    assert reason in parsed[0].reason
    assert parsed[1] == DnsOption(Kind.SERVER, ("2001:db8::9",), 5)


def test_a_length_that_cannot_be_followed_ends_the_message() -> None:
    assert list(parse_options(bytes([25, 0]) + rdnss(["2001:db8::1"], 5))) == [
        Malformed("an option of length 0 (the rest cannot be read)")
    ]
    (only,) = parse_options(rdnss(["2001:db8::1"], 5)[:20])
    assert isinstance(only, Malformed)


def test_lifetimes_refresh_infinity_and_withdrawal() -> None:
    table = RaDnsTable()
    item = (2, Kind.SERVER, "2001:db8::1")
    assert table.learn(2, DnsOption(Kind.SERVER, ("2001:db8::1",), 10), now=100.0) == [
        (item, 110.0)
    ]
    assert table.learn(2, DnsOption(Kind.SERVER, ("2001:db8::1",), 10), now=105.0) == [
        (item, 115.0)
    ]
    assert table.learn(2, DnsOption(Kind.SERVER, ("2001:db8::1",), INFINITY), now=106.0) == [
        (item, math.inf)
    ]
    assert table.values(2, Kind.SERVER) == ["2001:db8::1"]
    assert table.learn(2, DnsOption(Kind.SERVER, ("2001:db8::1",), 0), now=107.0) == [(item, None)]
    assert table.links == {}
    assert table.learn(2, DnsOption(Kind.SERVER, ("2001:db8::1",), 0), now=108.0) == []


def test_expiry_removes_only_that_item() -> None:
    table = RaDnsTable()
    table.learn(3, DnsOption(Kind.SERVER, ("2001:db8::1", "2001:db8::2"), 10), now=0.0)
    assert table.expire((3, Kind.SERVER, "2001:db8::1"))
    assert not table.expire((3, Kind.SERVER, "2001:db8::1"))
    assert table.values(3, Kind.SERVER) == ["2001:db8::2"]


def test_ra_sections_of_netpathd_conf() -> None:
    assert parse_settings("", "f").ra == RaPolicy()
    settings = parse_settings('[ra]\nuse-dns = no\n[ra "wlan0"]\nuse-dns = yes\n', "f")
    assert not settings.ra.uses_dns("eth0")
    assert settings.ra.uses_dns("wlan0")
    assert parse_settings('[ra "eth1"]\nuse-dns = no\n', "f").ra.uses_dns("eth0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ra]\nuse-dns = maybe\n", "f:2: use-dns must be a boolean"),
        ("[ra]\ndns = yes\n", "unknown key 'dns' in [ra]"),
        ('[ra "a"]\nuse-dns = no\n[ra "a"]\nuse-dns = no\n', "already on line 1"),
    ],
)
def test_bad_ra_sections_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(text, "f")
