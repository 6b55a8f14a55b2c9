"""The TCP->MPTCP program in a VM with Debian's 6.12 kernel: one boot runs every guest test.

tests/vm/guest_bpf.py runs inside (see tests/vm/vm.py for the VM); each of its test
functions is one test here, passed when all its cases passed in the guest.  The static C
and Go clients are built here first (gcc -static; golang-go with CGO_ENABLED=0) into the
share the guest reads.  Marked integration: as root a skip fails the run.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.vm import vm

pytestmark = pytest.mark.integration

GUEST = Path(__file__).parent / "guest_bpf.py"
CLIENTS = Path(__file__).parent / "clients"
GUEST_COMMAND = (
    "PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest tests/vm/guest_bpf.py "
    f"-p no:cacheprovider -q -rA --junitxml={vm.GUEST_OUT}/junit.xml"
)


def guest_tests() -> list[str]:
    tree = ast.parse(GUEST.read_text())
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]  # fmt: skip


def build_clients(out: Path) -> None:
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(out / "client_c"), str(CLIENTS / "client.c")],
        check=True,
    )
    env = {**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(out / "gocache"),
           "GOPATH": str(out / "gopath"), "GOFLAGS": "-mod=mod"}  # fmt: skip
    subprocess.run(
        ["go", "build", "-o", str(out / "client_go"), str(CLIENTS / "client.go")],
        check=True, env=env, cwd=CLIENTS,
    )  # fmt: skip
    shutil.rmtree(out / "gocache", ignore_errors=True)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    """Guest test function → [(case, outcome text)], from the guest's JUnit XML."""
    out = tmp_path_factory.mktemp("vm-out")
    out.chmod(0o777)
    build_clients(out)
    booted = vm.boot(GUEST_COMMAND, out, timeout=900)
    junit = out / "junit.xml"
    assert junit.exists(), f"no results: {booted.console[-3000:]}\n{booted.kernel_log[-3000:]}"
    results: dict[str, list[tuple[str, str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
        text = (
            "passed"
            if not problems
            else "\n".join(f"{p.tag}: {p.get('message', '')}\n{p.text or ''}" for p in problems)
        )
        results.setdefault(name.partition("[")[0], []).append((name, text))
    print(booted.console[-4000:])
    return results


@pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason="qemu-system-x86 is not installed")
@pytest.mark.parametrize("name", guest_tests())
def test_in_the_vm(outcomes: dict[str, list[tuple[str, str]]], name: str) -> None:
    cases = outcomes.get(name)
    assert cases, f"{name} did not run in the guest"
    failed = [f"{case}: {text}" for case, text in cases if text != "passed"]
    assert not failed, "\n\n".join(failed)
