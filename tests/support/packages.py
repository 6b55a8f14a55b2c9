"""The Debian and RPM packages of this tree, each built once per test run.

Both the package tests and the VM tier use them, so the .deb the guest installs is the one
lintian checked. One build makes every binary package of the source: ``netpathd`` and
``netpathd-resolvconf`` (the ``/usr/sbin/resolvconf`` link) lie side by side.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Building needs dpkg-buildpackage and debhelper; generous for a loaded 2-core machine.
BUILD_TIMEOUT = 900


@functools.cache
def _output_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="netpathd-packages-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def run_build_script(script: Path, *args: str, timeout: float) -> Path:
    """Run a build script and return the path its output ends with (what it built)."""
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0:
        name = script.relative_to(ROOT)
        raise AssertionError(f"{name} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return Path(done.stdout.split()[-1])


def _build(script: str, out: Path) -> Path:
    return run_build_script(ROOT / "packaging" / script, str(out), timeout=BUILD_TIMEOUT)


@functools.cache
def debian_package() -> Path:
    """The .deb built by packaging/build-deb (its .changes file lies beside it)."""
    return _build("build-deb", _output_dir() / "deb")


@functools.cache
def rpm_package() -> Path:
    """The binary .rpm built by packaging/build-rpm."""
    return _build("build-rpm", _output_dir() / "rpm")


def _sibling(package: Path, pattern: str) -> Path:
    found = sorted(package.parent.glob(pattern))
    assert len(found) == 1, f"{pattern} beside {package.name}: {[path.name for path in found]}"
    return found[0]


def debian_resolvconf_package() -> Path:
    """netpathd-resolvconf's .deb, built with netpathd's."""
    return _sibling(debian_package(), "netpathd-resolvconf_*.deb")


def rpm_resolvconf_package() -> Path:
    """The netpathd-resolvconf subpackage's .rpm, built with netpathd's."""
    return _sibling(rpm_package(), "netpathd-resolvconf-[0-9]*.rpm")
