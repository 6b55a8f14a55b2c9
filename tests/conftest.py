"""Shared pytest configuration: integration tests need root, and say so when skipped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

IS_ROOT = os.geteuid() == 0

pytest_plugins = ["tests.support.fixtures", "tests.support.polkit"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces and a private bus")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """As root nothing excuses skipping an integration test: such a skip fails the run."""
    outcome = yield
    report = outcome.get_result()
    if IS_ROOT and report.skipped and "integration" in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"integration test skipped while running as root: {report.longrepr}"
