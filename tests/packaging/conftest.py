"""The man pages and completion scripts, built once per run exactly as the packages build them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build_docs.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out
