"""The automatic-endpoint policy: rule resolution and the ``[auto ...]`` sections of mptcp.conf."""

from __future__ import annotations

import ipaddress

import pytest

from netpathd.errors import ConfigError, InvalidArgument
from netpathd.model.keyfile import parse_keyfile
from netpathd.model.mptcp import EndpointFlag
from netpathd.model.mptcp_auto_config import (
    DISABLED,
    AutoPolicy,
    AutoRule,
    LimitsMode,
    parse_auto_policy,
)

SIGNAL, SUBFLOW, BACKUP, FULLMESH = (
    EndpointFlag.SIGNAL,
    EndpointFlag.SUBFLOW,
    EndpointFlag.BACKUP,
    EndpointFlag.FULLMESH,
)
PATH = "/etc/netpathd/mptcp.conf"
ip = ipaddress.ip_address


def parse(text: str) -> AutoPolicy:
    policy = parse_auto_policy(parse_keyfile(text, PATH), PATH)
    assert policy is not None
    return policy


def test_without_auto_sections_automatic_endpoints_are_off() -> None:
    # netpathd's difference from NetworkManager: [auto] is an explicit opt-in.
    text = '[endpoint "198.51.100.1"]\nflags = signal\n'  # not ours: ignored
    assert parse_auto_policy(parse_keyfile(text, PATH), PATH) is None


def test_a_narrower_section_without_auto_is_refused_not_guessed() -> None:
    text = '[endpoint "198.51.100.1"]\n\n[auto "eth1"]\nflags = backup\n[auto "eth2"]\n'
    with pytest.raises(ConfigError) as error:
        parse_auto_policy(parse_keyfile(text, PATH), PATH)
    assert error.value.line == 3
    assert "off without an [auto] section" in error.value.message


def test_an_empty_auto_section_is_networkmanagers_default() -> None:
    policy = parse("[auto]\n")
    assert policy == AutoPolicy()
    rule = policy.rule_for("eth0", ip("198.51.100.1"))
    assert rule.flags == {SUBFLOW}
    assert not rule.also_without_default_route and not rule.also_without_sysctl
    assert rule.sources == ("built-in default",)
    assert policy.limits is LimitsMode.KEEP


def test_a_full_file() -> None:
    policy = parse(
        """
[auto]
flags = subflow
also-without-sysctl = yes
limits = follow

[auto "eth*"]
also-without-default-route = true

[auto "wwan0"]
flags = disabled

[auto "198.51.100.0/24"]
flags = subflow, backup

[auto "2001:db8::7"]
flags = signal
"""
    )
    assert policy == AutoPolicy(
        default=AutoRule(flags=frozenset({SUBFLOW}), also_without_sysctl=True),
        interfaces=(
            ("eth*", AutoRule(also_without_default_route=True)),
            ("wwan0", AutoRule(flags=DISABLED)),
        ),
        prefixes=(
            (ipaddress.ip_network("198.51.100.0/24"), AutoRule(flags=frozenset({SUBFLOW, BACKUP}))),
            (ipaddress.ip_network("2001:db8::7/128"), AutoRule(flags=frozenset({SIGNAL}))),
        ),
        limits=LimitsMode.FOLLOW,
    )
    rule = policy.rule_for("eth0", ip("198.51.100.9"))
    assert rule.flags == {SUBFLOW, BACKUP}
    assert rule.also_without_default_route and rule.also_without_sysctl  # cascaded
    assert rule.sources == ('[auto "198.51.100.0/24"]', '[auto "eth*"]', "[auto]")
    assert not policy.rule_for("wwan0", ip("203.0.113.1")).enabled
    assert policy.rule_for("wwan0", ip("2001:db8::7")).flags == {SIGNAL}


def test_the_longest_prefix_wins_whatever_the_file_order() -> None:
    policy = parse(
        '[auto "198.51.100.7"]\nflags = disabled\n[auto "198.51.100.0/24"]\nflags = signal\n'
        "[auto]\n"
    )
    assert not policy.rule_for("eth0", ip("198.51.100.7")).enabled
    assert policy.rule_for("eth0", ip("198.51.100.8")).flags == {SIGNAL}
    assert policy.rule_for("eth0", ip("203.0.113.8")).flags == {SUBFLOW}


def test_an_exact_name_beats_globs_and_the_first_glob_wins() -> None:
    policy = parse(
        '[auto "e*"]\nflags = signal\n'
        '[auto "eth*"]\nflags = backup\n'
        '[auto "eth1"]\nflags = subflow, fullmesh\n'
        "[auto]\n"
    )
    assert policy.rule_for("eth1", ip("203.0.113.1")).flags == {SUBFLOW, FULLMESH}
    assert policy.rule_for("eth0", ip("203.0.113.1")).flags == {SIGNAL}
    assert policy.rule_for("wlan0", ip("203.0.113.1")).flags == {SUBFLOW}


def test_rules_refuse_what_the_kernel_refuses() -> None:
    with pytest.raises(InvalidArgument, match="signal and fullmesh"):
        AutoRule(flags=frozenset({SIGNAL, FULLMESH}))
    with pytest.raises(InvalidArgument, match="implicit cannot be used"):
        AutoRule(flags=frozenset({EndpointFlag.IMPLICIT}))


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "[auto]\nflags = subflow, turbo\n",
            2,
            "unknown flag 'turbo' (known: disabled, backup, fullmesh, signal, subflow)",
        ),
        (
            "[auto]\nflags = disabled, subflow\n",
            2,
            "'disabled' cannot be combined with other flags",
        ),
        (
            "[auto]\nflags = signal fullmesh\n",
            2,
            "flags signal and fullmesh cannot be combined (the kernel refuses it)",
        ),
        ("[auto]\nflags = laminar\n", 2, "flag laminar cannot be used for automatic endpoints"),
        ("[auto]\nflags = ,\n", 2, "flags is empty (use 'disabled' to turn off)"),
        (
            "[auto]\nalso-without-sysctl = maybe\n",
            2,
            "also-without-sysctl must be a boolean, got 'maybe'",
        ),
        ("[auto]\nlimits = raise\n", 2, "limits must be follow or keep, got 'raise'"),
        (
            '[auto "eth0"]\nflags = subflow\nlimits = follow\n',
            3,
            "limits apply to the whole namespace: set them in [auto]",
        ),
        (
            '[auto "eth0"]\nsubflows = 2\n',
            2,
            "unknown key 'subflows' in [auto \"eth0\"] (known: flags, "
            "also-without-default-route, also-without-sysctl, limits)",
        ),
        ("[auto]\n[auto]\n", 2, "[auto] repeats line 1"),
        ('[auto "eth*"]\n[auto "eth*"]\n', 2, '[auto "eth*"] repeats line 1'),
        (
            '[auto "2001:db8::1"]\n[auto "2001:db8:0::1/128"]\n',
            2,
            '[auto "2001:db8::1/128"] repeats line 1',
        ),
        (
            '[auto "198.51.100.7/24"]\n',
            1,
            "invalid prefix '198.51.100.7/24': has host bits set (did you mean 198.51.100.0/24?)",
        ),
        (
            '[auto "198.51.100.300"]\n',
            1,
            "invalid prefix '198.51.100.300': "
            "'198.51.100.300' does not appear to be an IPv4 or IPv6 network",
        ),
        (
            '[auto "a-very-long-name0"]\n',
            1,
            "invalid interface name 'a-very-long-name0' (1 to 15 characters)",
        ),
        ('[auto ""]\n', 1, "invalid interface name '' (1 to 15 characters)"),
        ('[auto "eth 0"]\n', 1, "invalid interface name 'eth 0' (contains a space)"),
        (
            '[auto "fe80::1%e1"]\n',
            1,
            "invalid prefix 'fe80::1%e1': a prefix takes no %scope (use an interface section)",
        ),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.message == f"{PATH}:{line}: {reason}"
    assert caught.value.line == line
