"""The RPM: rpmbuild -bb builds the spec, rpm -qlp lists the Debian package's files, rpmlint passes.

Installing it cannot be tried here: no RPM distribution is reachable from these machines.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.packages import debian_package, rpm_package

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packages

# Where the two families put the same file differently.
DEB_TO_RPM = {
    "/lib/systemd/system/": "/usr/lib/systemd/system/",
    "/usr/share/zsh/vendor-completions/": "/usr/share/zsh/site-functions/",
}


def rpm_files() -> set[str]:
    done = subprocess.run(
        ["rpm", "-qlp", str(rpm_package())], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def deb_files() -> set[str]:
    done = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(debian_package())], capture_output=True, check=True
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


def test_rpm_has_the_debian_packages_files() -> None:
    # The RPM also carries systemd-python (RHEL 9 has none for python3.11) and the
    # python3 runtime hook of dh_python3 and the lintian overrides are Debian's alone.
    debian_only = ("/usr/share/python3/", "/usr/share/lintian/")
    expected = {path for path in deb_files() if not path.startswith(debian_only)}
    assert expected - rpm_files() == set()
    assert "/usr/lib/netpathd/systemd/_daemon.cpython-311-x86_64-linux-gnu.so" in rpm_files()


def test_rpm_scriptlets_follow_systemd_rpm_macros() -> None:
    done = subprocess.run(
        ["rpm", "-qp", "--scripts", str(rpm_package())], capture_output=True, text=True, check=True
    )
    assert "systemctl --no-reload preset netpathd.service" in done.stdout
    assert "systemctl --no-reload disable --now netpathd.service" in done.stdout
    assert "systemctl try-restart netpathd.service" in done.stdout


def test_rpmlint_reports_nothing_unjustified() -> None:
    done = subprocess.run(
        [
            "rpmlint",
            "-r",
            str(ROOT / "packaging/rpm/netpathd.rpmlintrc"),
            str(ROOT / "packaging/rpm/netpathd.spec"),
            str(rpm_package()),
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
