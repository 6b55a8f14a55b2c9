"""pyproject.toml as setuptools reads it: no deprecated forms (each one warns on every install)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# SPDX license expression (PEP 639): identifiers joined by AND/OR/WITH, e.g. LGPL-2.1-or-later
SPDX = re.compile(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*")


def test_license_is_an_spdx_string() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert isinstance(project["license"], str), "a TOML table is deprecated since setuptools 77"
    assert SPDX.fullmatch(project["license"])
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def test_build_requires_a_setuptools_that_reads_spdx_strings() -> None:
    requires = tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]
    pins = [r for r in requires if re.match(r"setuptools\b", r)]
    assert len(pins) == 1
    found = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", pins[0].replace(" ", ""))
    assert found and int(found[1]) >= 77, pins  # PEP 639 license strings: setuptools 77.0.0
