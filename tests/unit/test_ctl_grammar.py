"""netpathctl's command-line grammar, without a daemon: where flags go, abbreviations, help."""

from __future__ import annotations

import argparse

import pytest

from netpathd.ctl import dns, mptcp
from netpathd.ctl.cli import UsageError
from netpathd.ctl.main import parse, show_status
from netpathd.model.dns_settings import SETTINGS_SIGNATURES


def parsed(*argv: str) -> argparse.Namespace:
    return parse(list(argv))


README_DNS_SET = ("dns", "set", "tmp", "connection.interface-name", "eth0", "ipv4.dns", "192.0.2.1")


@pytest.mark.parametrize(
    "argv",
    [
        ("--runtime", *README_DNS_SET),
        ("dns", "set", "--runtime", *README_DNS_SET[2:]),
        ("dns", "set", "tmp", "--runtime", *README_DNS_SET[3:]),
        (*README_DNS_SET[:5], "--runtime", *README_DNS_SET[5:]),
        (*README_DNS_SET, "--runtime"),
    ],
    ids=" ".join,
)
def test_runtime_goes_anywhere_on_the_line(argv: tuple[str, ...]) -> None:
    args = parsed(*argv)
    assert args.runtime is True
    assert args.handler is dns.set_connection
    assert args.words == list(README_DNS_SET[2:])


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (("--json", "status"), show_status),
        (("status", "--json"), show_status),
        (("mptcp", "limits", "--json"), mptcp.limits_show),
        (("mptcp", "--json", "limits"), mptcp.limits_show),
        (("mptcp", "limits", "show", "--json"), mptcp.limits_show),
        (("mptcp", "endpoint", "show", "--json"), mptcp.endpoint_show),
        (("dns", "explain", "--json"), dns.explain),
        (("mptcp", "endpoint", "add", "192.0.2.1", "--json", "id", "3"), mptcp.endpoint_add),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_json_goes_anywhere_on_the_line(argv: tuple[str, ...], handler: object) -> None:
    args = parsed(*argv)
    assert args.json is True
    assert args.handler is handler


def test_flags_after_a_double_dash_are_words() -> None:
    args = parsed("dns", "set", "tmp", "ipv4.dns-search", "--", "--json")
    assert args.json is False
    assert args.words == ["tmp", "ipv4.dns-search", "--json"]


def test_runtime_on_a_verb_that_changes_nothing_is_refused() -> None:
    with pytest.raises(UsageError, match="--runtime"):
        parsed("dns", "show", "--runtime")


def test_bare_netpathctl_shows_status() -> None:
    assert parsed().handler is show_status
    assert parsed("--json").handler is show_status


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (("mptcp", "endpoint", "sh"), mptcp.endpoint_show),
        (("mptcp", "limit"), mptcp.limits_show),
        (("mptcp", "l", "s", "subflows", "2"), mptcp.limits_set),  # ip: set before show
        (("mptcp", "e", "a", "192.0.2.1"), mptcp.endpoint_add),  # ip: endpoint before enable
        (("mptcp", "e", "d", "id", "1"), mptcp.endpoint_delete),
        (("mptcp", "e", "c", "id", "1", "backup"), mptcp.endpoint_change),
        (("mptcp", "enable"), mptcp.enabled),
        (("mptcp", "enabled"), mptcp.enabled),
        (("mptcp", "mon"), mptcp.monitor),
        (("st",), show_status),
        (("dns", "ex"), dns.explain),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_verbs_abbreviate_as_in_ip(argv: tuple[str, ...], handler: object) -> None:
    assert parsed(*argv).handler is handler


def test_enable_is_not_read_as_enabled() -> None:
    assert parsed("mptcp", "enable").value is True
    assert parsed("mptcp", "enabled").value is None


def test_abbreviations_stop_at_the_verbs() -> None:
    """Words after the verb are the verb's own: an address is not a prefix of a verb."""
    assert parsed("dns", "set", "s").words == ["s"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("mptcp", "endpoint", "shw"), "unknown command 'shw' for 'netpathctl mptcp endpoint'"),
        (("mptcp", "endpoint", "shw"), "did you mean 'show'?"),
        (("mptcp", "limts"), "did you mean 'limits'?"),
        (("statsu",), "did you mean 'status'?"),
        (("dns", "explian"), "did you mean 'explain'?"),
        (("mptcp", "endpoint", "xyz"), "(one of: add, change, delete, show, flush)"),
    ],
)
def test_unknown_verbs_say_what_was_meant(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parsed(*argv)
    assert message in str(raised.value)


def test_ip_words_abbreviate_too() -> None:
    assert mptcp.endpoint_words(["192.0.2.1", "d", "e1", "i", "4", "p", "80", "signal"]) == (
        "192.0.2.1",
        {"dev": "e1", "id": "4", "port": "80"},
        ["signal"],
    )


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        parsed(*argv, "--help")
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "grammar"),
    [
        (("mptcp", "endpoint", "add"), "ADDRESS [dev IFNAME] [id ID] [port PORT] [FLAG...]"),
        (("mptcp", "endpoint", "change"), "id ID [backup|nobackup] [fullmesh|nofullmesh]"),
        (("mptcp", "endpoint", "delete"), "id ID | ADDRESS"),
        (("mptcp", "limits", "set"), "[subflows N] [add_addr_accepted N]"),
        (("dns", "set"), "NAME [KEY VALUE]..."),
    ],
)
def test_leaf_help_shows_the_grammar(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], grammar: str
) -> None:
    text = help_text(capsys, *argv)
    assert f"usage: netpathctl {' '.join(argv)} {grammar}" in " ".join(text.split())
    assert "words" not in text


def test_endpoint_add_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "mptcp", "endpoint", "add")
    assert "signal, subflow, backup, fullmesh, laminar" in " ".join(text.split())


def test_dns_set_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "dns", "set")
    for key in SETTINGS_SIGNATURES:
        assert key in text


def test_missing_words_name_the_grammar_not_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parsed("mptcp", "endpoint", "add")
    error = capsys.readouterr().err
    assert "words" not in error
    assert "ADDRESS" in error


def test_monitor_prints_the_token_in_hex_like_ip() -> None:
    line = mptcp.event_line("created", {"token": 0x0A0B0C0D, "sport": 80})
    assert line == "[         CREATED] token=0a0b0c0d sport=80"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["subflow", "-1"], "limit subflows -1 outside 0..8"),
        (["subflow", "9"], "limit subflows 9 outside 0..8"),
        (["add_addr_accepted", "4294967296"], "limit add_addr_accepted 4294967296 outside 0..8"),
    ],
)
def test_limit_ranges_read_as_the_daemons(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        mptcp.limit_values(words)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["subflows", "3", "sublows", "4"], "unknown word 'sublows'"),
        (["8"], "unknown word '8'"),
    ],
)
def test_limits_name_the_word_they_do_not_know(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=rf"^{message}: expected \[subflows N\]"):
        mptcp.limit_values(words)


async def test_delete_names_the_extra_words_before_asking_the_daemon() -> None:
    args = argparse.Namespace(words=["192.0.2.1", "192.0.2.2"])
    with pytest.raises(UsageError, match=r"^one endpoint at a time, not '192\.0\.2\.1 192"):
        await mptcp.endpoint_delete(None, args)  # type: ignore[arg-type]  # never reached


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["192.0.2.1", "id", "-1"], "endpoint id -1 outside 0..255"),
        (["192.0.2.1", "id", "4294967296"], "endpoint id 4294967296 outside 0..255"),
        (["192.0.2.1", "port", "-1", "signal"], "port -1 outside 0..65535"),
    ],
)
def test_endpoint_ranges_read_as_the_daemons(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        mptcp.add_body(words)


@pytest.mark.parametrize("value", ["2147483648", "-2147483649"])
def test_dns_priority_outside_int32_says_the_range(value: str) -> None:
    with pytest.raises(UsageError, match=r"is outside -2147483647\.\.2147483647"):
        dns.parse_settings(["ipv4.dns-priority", value])


def test_unknown_dns_setting_suggests_the_key() -> None:
    with pytest.raises(UsageError, match=r"did you mean 'ipv4\.dns'"):
        dns.parse_settings(["ipv4.dnz", "192.0.2.1"])
