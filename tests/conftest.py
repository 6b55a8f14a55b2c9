"""Shared pytest configuration: integration tests need root, and say so when skipped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

IS_ROOT = os.geteuid() == 0
# Tests that root (and so CI) must never skip; without root they are skipped for this reason.
ROOT_ONLY = {
    "integration": "needs root: creates network namespaces and a private bus",
    "packages": "needs root: scripts/setup installs the packaging tools, /var/cache wheels",
    "vm": "needs root: builds the guest image with mmdebstrap --mode=root",
}

# tests.support.daemon first: fixtures imports it, and a plugin imported before it is
# registered misses pytest's assertion rewriting.
pytest_plugins = ["tests.support.daemon", "tests.support.fixtures", "tests.support.polkit"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    for item in items:
        for marker, reason in ROOT_ONLY.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """As root nothing excuses skipping an integration, package or VM test: it fails the run."""
    outcome = yield
    report = outcome.get_result()
    kinds = [marker for marker in ROOT_ONLY if marker in item.keywords]
    if IS_ROOT and report.skipped and kinds:
        report.outcome = "failed"
        report.longrepr = f"{kinds[0]} test skipped while running as root: {report.longrepr}"
