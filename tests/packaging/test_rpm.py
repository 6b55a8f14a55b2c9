"""The RPMs: rpmbuild -bb builds the spec, rpm -qlp lists the .debs' files, rpmlint passes.

The spec's ``resolvconf`` subpackage is the Debian ``netpathd-resolvconf``.

Installing it cannot be tried here: no RPM distribution is reachable from these machines.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.packages import (
    debian_package,
    debian_resolvconf_package,
    rpm_package,
    rpm_resolvconf_package,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packages

# Where the two families put the same file differently.
DEB_TO_RPM = {
    "/lib/systemd/system/": "/usr/lib/systemd/system/",
    "/usr/share/zsh/vendor-completions/": "/usr/share/zsh/site-functions/",
}


def rpm_query(package: Path, *query: str) -> str:
    done = subprocess.run(
        ["rpm", "-qp", *query, str(package)], capture_output=True, text=True, check=True
    )
    return done.stdout


def rpm_files(package: Path) -> set[str]:
    return set(rpm_query(package, "--list").split())


def deb_files(package: Path) -> set[str]:
    done = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(package)], capture_output=True, check=True
    )
    listing = subprocess.run(
        ["tar", "-t"], input=done.stdout, capture_output=True, check=True
    ).stdout.decode()
    files = set()
    for name in listing.split():
        path = name.removeprefix(".")
        if name.endswith("/") or path.startswith("/usr/share/doc/"):
            continue
        for deb, rpm in DEB_TO_RPM.items():
            path = path.replace(deb, rpm)
        files.add(path)
    return files


@pytest.mark.parametrize(
    ("deb", "rpm"),
    [(debian_package, rpm_package), (debian_resolvconf_package, rpm_resolvconf_package)],
    ids=["netpathd", "netpathd-resolvconf"],
)
def test_rpm_has_the_debian_packages_files(
    deb: Callable[[], Path], rpm: Callable[[], Path]
) -> None:
    # The python3 runtime hook of dh_python3 and the lintian overrides are Debian's alone.
    debian_only = ("/usr/share/python3/", "/usr/share/lintian/")
    expected = {path for path in deb_files(deb()) if not path.startswith(debian_only)}
    assert expected - rpm_files(rpm()) == set()


def test_rpm_carries_systemd_python() -> None:
    # RHEL 9 has no python3.11-systemd.
    shipped = "/usr/lib/netpathd/systemd/_daemon.cpython-311-x86_64-linux-gnu.so"
    assert shipped in rpm_files(rpm_package())


def test_resolvconf_is_only_in_its_subpackage() -> None:
    command = {"/usr/sbin/resolvconf", "/usr/share/man/man8/resolvconf.8.gz"}
    assert command & rpm_files(rpm_package()) == set()
    links = rpm_query(rpm_resolvconf_package(), "--qf", "[%{FILENAMES} -> %{FILELINKTOS}\\n]")
    assert {line for line in links.splitlines() if not line.endswith(" -> ")} == {
        "/usr/sbin/resolvconf -> ../bin/netpathctl",
        "/usr/share/man/man8/resolvconf.8.gz -> ../man1/netpathctl.1.gz",
    }


def test_resolvconf_subpackage_takes_the_name_from_openresolv() -> None:
    package = rpm_resolvconf_package()
    version = rpm_query(rpm_package(), "--qf", "%{VERSION}-%{RELEASE}")
    assert f"netpathd = {version}" in rpm_query(package, "--requires").splitlines()
    assert f"resolvconf = {version}" in rpm_query(package, "--provides").splitlines()
    assert rpm_query(package, "--conflicts").splitlines() == ["openresolv"]


def test_rpm_scriptlets_follow_systemd_rpm_macros() -> None:
    scripts = rpm_query(rpm_package(), "--scripts")
    assert "systemctl --no-reload preset netpathd.service" in scripts
    assert "systemctl --no-reload disable --now netpathd.service" in scripts
    assert "systemctl try-restart netpathd.service" in scripts


def test_rpmlint_reports_nothing_unjustified() -> None:
    done = subprocess.run(
        [
            "rpmlint",
            "-r",
            str(ROOT / "packaging/rpm/netpathd.rpmlintrc"),
            str(ROOT / "packaging/rpm/netpathd.spec"),
            str(rpm_package()),
            str(rpm_resolvconf_package()),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    assert " 0 errors, 0 warnings" in done.stdout


def test_rpm_version_is_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    done = subprocess.run(
        ["rpm", "-qp", "--qf", "%{VERSION}", str(rpm_package())],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == project["version"]
