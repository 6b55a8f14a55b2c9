"""The Debian packages: dpkg-buildpackage builds them, lintian passes, they hold the repo's files.

``netpathd`` is the daemon and its client; ``netpathd-resolvconf`` only links
``/usr/sbin/resolvconf`` to netpathctl, so installing netpathd never takes ``resolvconf``
over from another package (as systemd-resolvconf does for resolvectl).
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from netpathd.ctl.main import build_parser
from tests.packaging.parsers import bash_complete, walk
from tests.support.packages import debian_package, debian_resolvconf_package

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packages

# Installed from the repository itself, so changes to dbus/ and systemd/ flow into the package.
REPO_FILES = {
    "lib/systemd/system/netpathd.service": "systemd/netpathd.service",
    "usr/lib/netpathd/netpathd.service.d/dnsmasq.conf": "packaging/netpathd.service.d/dnsmasq.conf",
    "usr/share/dbus-1/system.d/org.netpathd1.conf": "dbus/org.netpathd1.conf",
    "usr/share/dbus-1/system-services/org.netpathd1.service": "dbus/org.netpathd1.service",
    "usr/share/polkit-1/actions/org.netpathd1.policy": "dbus/org.netpathd1.policy",
    "etc/netpathd/netpathd.conf": "packaging/netpathd.conf",
    **{
        f"usr/share/dbus-1/interfaces/{xml.name}": f"dbus/{xml.name}"
        for xml in (ROOT / "dbus").glob("org.netpathd1.*.xml")
    },
}
GENERATED = (
    "usr/bin/netpathd",
    "usr/bin/netpathctl",
    "usr/share/man/man8/netpathd.8.gz",
    "usr/share/man/man1/netpathctl.1.gz",
    "usr/share/man/man5/netpathd.conf.5.gz",
    "usr/share/bash-completion/completions/netpathctl",
    "usr/share/zsh/vendor-completions/_netpathctl",
    "usr/lib/netpathd/netpathd/app.py",
    "usr/lib/netpathd/dbus_fast/__init__.py",
    "usr/lib/netpathd/pyroute2/__init__.py",
)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("deb")
    subprocess.run(["dpkg-deb", "-x", str(debian_package()), str(tree)], check=True, timeout=120)
    return tree


def field(name: str, package: Path | None = None) -> str:
    done = subprocess.run(
        ["dpkg-deb", "-f", str(package or debian_package()), name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_lintian_reports_no_error_and_no_warning() -> None:
    changes = debian_package().with_suffix(".changes")
    done = subprocess.run(
        ["lintian", "--pedantic", "--fail-on", "error,warning,pedantic", str(changes)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    findings = [line for line in done.stdout.splitlines() if not line.startswith("N:")]
    assert (done.returncode, findings) == (0, [])


def links_of(package: Path) -> dict[str, str]:
    """Every symbolic link in ``package`` (a failure for anything else): path -> target.

    The package's own documents and lintian overrides do not count.
    """
    done = subprocess.run(
        ["dpkg-deb", "--contents", str(package)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = {}
    for line in done.stdout.splitlines():
        mode, *_, name = line.split(maxsplit=5)
        path = name.split(" -> ")[0].removeprefix(".")
        if mode.startswith("d") or path.startswith(("/usr/share/doc/", "/usr/share/lintian/")):
            continue
        assert mode.startswith("l"), f"not a link: {line}"
        found[path] = name.split(" -> ")[1]
    return found


def test_netpathd_itself_never_installs_resolvconf(unpacked: Path) -> None:
    assert not (unpacked / "usr/sbin/resolvconf").exists()
    assert list((unpacked / "usr/share/man").rglob("resolvconf*")) == []


def test_resolvconf_package_holds_only_links_to_netpathctl() -> None:
    assert links_of(debian_resolvconf_package()) == {
        "/usr/sbin/resolvconf": "../bin/netpathctl",
        "/usr/share/man/man8/resolvconf.8.gz": "../man1/netpathctl.1.gz",
    }


def test_resolvconf_links_reach_netpathds_files(tmp_path: Path) -> None:
    for package in (debian_package(), debian_resolvconf_package()):
        subprocess.run(["dpkg-deb", "-x", str(package), str(tmp_path)], check=True, timeout=120)
    for link, target in (
        ("usr/sbin/resolvconf", "usr/bin/netpathctl"),
        ("usr/share/man/man8/resolvconf.8.gz", "usr/share/man/man1/netpathctl.1.gz"),
    ):
        assert (tmp_path / link).resolve() == (tmp_path / target).resolve(strict=True), link


def test_resolvconf_package_takes_the_name_from_resolvconf_and_openresolv() -> None:
    package = debian_resolvconf_package()
    relations = {
        name: field(name, package) for name in ("Depends", "Provides", "Conflicts", "Replaces")
    }
    assert relations == {
        "Depends": f"netpathd (= {field('Version')})",
        "Provides": "resolvconf",
        "Conflicts": "openresolv, resolvconf",
        "Replaces": "openresolv, resolvconf",
    }
    assert field("Architecture", package) == field("Architecture")


def test_repo_files_are_installed_unchanged(unpacked: Path) -> None:
    for installed, source in REPO_FILES.items():
        assert (unpacked / installed).read_bytes() == (ROOT / source).read_bytes(), installed


def test_generated_files_and_private_python_packages_are_installed(unpacked: Path) -> None:
    assert [path for path in GENERATED if not (unpacked / path).is_file()] == []


def test_no_bytecode_or_build_paths_are_shipped(unpacked: Path) -> None:
    assert list(unpacked.rglob("*.pyc")) == []
    assert list(unpacked.rglob("direct_url.json")) == []
    assert not (unpacked / "usr/lib/netpathd/bin").exists()


def test_version_is_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert field("Version").split("-")[0] == project["version"]


def test_depends_pin_the_python_of_the_shipped_extensions() -> None:
    # dbus-fast's extensions are built for CPython 3.11 (cpython-311-x86_64-linux-gnu.so).
    depends = field("Depends")
    for needed in ("python3 (>= 3.11)", "python3 (<< 3.12)", "python3-systemd"):
        assert needed in depends


def test_the_configuration_as_installed_sets_nothing(unpacked: Path) -> None:
    text = (unpacked / "etc/netpathd/netpathd.conf").read_text(encoding="utf-8")
    settings = [line for line in text.splitlines() if line.strip() and line[0] not in "#;["]
    assert settings == []


def test_launchers_run_with_the_system_python_and_the_private_packages(unpacked: Path) -> None:
    private = unpacked / "usr/lib/netpathd"
    for launcher, package in (("netpathd", "netpathd.app"), ("netpathctl", "netpathd.ctl.main")):
        text = (unpacked / "usr/bin" / launcher).read_text(encoding="utf-8")
        assert text.startswith("#!/usr/bin/python3 -I\n")
        assert f"from {package} import main" in text
    probe = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(private)!r}); "
            "import dbus_fast, pyroute2, netpathd.app; "
            "print(dbus_fast.__file__, pyroute2.__file__, netpathd.app.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert all(path.startswith(str(private)) for path in probe.stdout.split())


def test_packaged_bash_completion_offers_every_verb(unpacked: Path) -> None:
    script = unpacked / "usr/share/bash-completion/completions/netpathctl"
    for path, parser in walk(build_parser()):
        children = {sub_path[0] for sub_path, _ in walk(parser) if len(sub_path) == 1}
        if children:
            assert children <= set(bash_complete(script, ["netpathctl", *path, ""])), path
