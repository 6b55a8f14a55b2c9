"""netpathd(8), netpathctl(1), netpathd.conf(5): lint-clean, and complete against the code."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netpathd.model import dns_settings, mptcp_auto_config, mptcp_config, ra_policy
from netpathd.model.settings import Settings
from tests.packaging.parsers import ctl_options, daemon_options, verbs

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("netpathd.8", "netpathctl.1", "netpathd.conf.5")
BOLD = re.compile(r"\*\*([^*]+)\*\*")


def source(page: str) -> str:
    return (ROOT / "man" / f"{page}.rst").read_text(encoding="utf-8")


def bold_words(page: str) -> set[str]:
    return set(BOLD.findall(source(page)))


@pytest.mark.parametrize("page", PAGES)
def test_man_page_is_clean_for_groff(built_docs: Path, page: str) -> None:
    groff = shutil.which("groff")
    assert groff, "groff is missing: scripts/setup installs groff-base"
    lint = subprocess.run(
        [groff, "-man", "-ww", "-z", str(built_docs / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    )
    assert (lint.returncode, lint.stderr) == (0, "")


@pytest.mark.parametrize("page", PAGES)
def test_man_page_has_its_name_and_section(built_docs: Path, page: str) -> None:
    name, section = page.rsplit(".", 1)
    text = (built_docs / "man" / page).read_text(encoding="utf-8")
    assert re.search(rf'^\.TH "?{re.escape(name)}"? "?{section}"?', text, re.MULTILINE), text[:400]


def test_every_netpathctl_verb_is_a_heading_of_netpathctl_1() -> None:
    headings = {match.split(" [")[0] for match in BOLD.findall(source("netpathctl.1"))}
    missing = [verb for verb in verbs() if verb not in headings]
    assert not missing


def test_every_option_is_documented() -> None:
    assert ctl_options() - bold_words("netpathctl.1") == set()
    assert daemon_options() - bold_words("netpathd.8") == set()


def test_no_documented_option_is_unknown_to_the_parsers() -> None:
    def documented(page: str) -> set[str]:
        # "--" ends netpathctl run's options; it is no option itself.
        return {word for word in bold_words(page) if word.startswith("-") and word != "--"}

    assert documented("netpathctl.1") - ctl_options() == set()
    assert documented("netpathd.8") - daemon_options() == set()


def test_every_configuration_key_is_in_netpathd_conf_5() -> None:
    # [main]'s keys; the `ra` field holds the [ra] sections, whose keys follow
    keys = {field.name.replace("_", "-") for field in dataclasses.fields(Settings)} - {"ra"}
    keys |= ra_policy.RA_KEYS
    keys |= mptcp_config._MPTCP_KEYS | mptcp_config._ENDPOINT_KEYS
    keys |= set(mptcp_auto_config._KEYS)
    keys |= set(dns_settings.SETTINGS_SIGNATURES) | set(dns_settings._GLOBAL_KEYS)
    documented = {word.split(" =")[0] for word in bold_words("netpathd.conf.5")}
    assert keys - documented == set()
