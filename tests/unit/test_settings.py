from __future__ import annotations

import pytest

from netpathd.errors import ConfigError
from netpathd.model.keyfile import parse_keyfile
from netpathd.model.settings import Settings, parse_settings


def test_empty_file_gives_defaults() -> None:
    assert parse_settings("# nothing\n\n", "f") == Settings()


def test_log_level_is_read() -> None:
    assert parse_settings("[main]\nlog-level = debug\n", "f").log_level == "debug"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "[main]\nlog-level = loud\n",
            2,
            "log-level must be one of debug, info, warning, error, got 'loud'",
        ),
        ("[main]\nloglevel = debug\n", 2, "unknown key 'loglevel' in [main]"),
        ("[mian]\n", 1, "unknown section [mian]"),
        ("log-level = debug\n", 1, "'log-level' is outside of any section"),
        ("[main\n", 1, "malformed section header '[main'"),
        ("[main]\njust words\n", 2, "expected 'key = value', got 'just words'"),
        ("[main]\nlog-level = info\nlog-level = debug\n", 3, "'log-level' is set twice in [main]"),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "/etc/netpathd/netpathd.conf")
    assert caught.value.message == f"/etc/netpathd/netpathd.conf:{line}: {reason}"
    assert caught.value.line == line


def test_sections_keep_their_argument_and_order() -> None:
    sections = parse_keyfile('[a "x y"]\nk = v\n\n[a "z"]\n', "f")
    assert [(s.name, s.argument, s.line) for s in sections] == [("a", "x y", 1), ("a", "z", 4)]
    assert sections[0].entries[0].key == "k"
    assert sections[0].entries[0].value == "v"


@pytest.mark.parametrize("mode", ["default", "dnsmasq", "systemd-resolved", "none"])
def test_dns_mode_is_read(mode: str) -> None:
    assert parse_settings(f"[main]\ndns = {mode}\n", "f").dns == mode


def test_unknown_dns_mode_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="dns must be one of default, dnsmasq, systemd-resolved, none"
    ):
        parse_settings("[main]\ndns = unbound\n", "f")
