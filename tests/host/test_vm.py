"""The VM tier: the fresh .debs on a real Debian 12 host with systemd as PID 1.

One boot runs every step of ``guest-steps`` in order; each step is a test here, so the
report names the step that failed, with its output and the guest's journal attached.
Skipped only where qemu cannot be installed; as root (and so in CI) a skip is a failure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.host.vm import GuestRun, build_image, qemu_missing, run_steps
from tests.support.packages import debian_package, debian_resolvconf_package

pytestmark = pytest.mark.vm

STEPS = [
    "baseline",
    "dpkg-install",
    "start-ready",
    "status-text",
    "journal-fields",
    "empty-config-changes-nothing",
    "bus-activation",
    "reload",
    "watchdog",
    "crash-loop",
    "security-score",
    "app-mptcp",
    "two-paths",
    "guide-mptcp",
    "resolver-file",
    "split-dns-dnsmasq",
    "split-dns-resolved",
    "resolvconf-package",
    "apt-remove",
    "apt-purge",
    "reinstall-remove-untouched",
]


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    missing = qemu_missing()
    if missing:
        pytest.skip(f"the VM tier needs qemu: {missing}")
    debs = {
        "netpathd.deb": debian_package(),
        "netpathd-resolvconf.deb": debian_resolvconf_package(),
    }
    image, image_seconds = build_image()
    run = run_steps(image, debs, STEPS, tmp_path_factory.mktemp("vm-share"))
    # The tier's times, in the pytest output (-s or the captured log of a failure).
    print(
        f"\nVM tier: image {image_seconds:.0f} s ({image.name}), boot and steps "
        f"{run.seconds:.0f} s; guest: {run.startup}",
        file=sys.stderr,
    )
    for name, (result, note) in run.steps.items():
        print(f"  {name}: {result} {note}", file=sys.stderr)
    return run


def failure_report(run: GuestRun, name: str) -> str:
    return (
        f"step {name}: {run.steps.get(name, ('never reported', ''))}\n"
        f"--- its output ---\n{run.step_output(name)}\n"
        f"--- guest exit status {run.exit_status}, {run.seconds:.0f} s; {run.startup}\n"
        f"--- netpathd in the guest journal ---\n{run.daemon_journal()}\n"
        f"--- guest journal (last lines) ---\n{run.journal_tail()}\n"
        f"--- console (last lines) ---\n{run.console[-3000:]}"
    )


def test_the_guest_ran_every_step(guest: GuestRun) -> None:
    assert list(guest.steps) == STEPS, failure_report(guest, next(iter(STEPS)))


@pytest.mark.parametrize("name", STEPS)
def test_step(guest: GuestRun, name: str) -> None:
    result, _ = guest.steps.get(name, ("never reported", ""))
    assert result == "ok", failure_report(guest, name)


def test_guest_steps_and_this_list_agree() -> None:
    script = (Path(__file__).parent / "guest-steps").read_text(encoding="utf-8")
    defined = re.findall(r"^step_([a-z_]+)\(\) \{$", script, re.MULTILINE)
    assert sorted(name.replace("_", "-") for name in defined) == sorted(STEPS)
