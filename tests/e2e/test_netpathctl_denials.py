"""What netpathctl says when it is not allowed: one line naming what is needed, exit code 4."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bus import private_bus
from tests.support.ctl import netpathctl, netpathctl_as
from tests.support.daemon import running_daemon
from tests.support.netns import Netns
from tests.support.polkit import GRANTED, TEST_USERS, UNGRANTED, Polkit

pytestmark = pytest.mark.integration

RUNTIME_DNS = ("dns", "set", "--runtime", "vpn", "connection.interface-name", "tun0",
               "connection.type", "vpn")  # fmt: skip
# a bus whose policy lets no one call Reload: dbus-daemon itself refuses
CLOSED_RELOAD = """<busconfig>
  <policy context="mandatory">
    <deny send_destination="org.netpathd1" send_interface="org.netpathd1.Manager"
          send_member="Reload"/>
  </policy>
</busconfig>
"""


def test_a_bus_policy_refusal_says_what_is_needed(ns: Netns, tmp_path: Path) -> None:
    with (
        private_bus({"closed.conf": CLOSED_RELOAD}) as bus,
        running_daemon(ns, bus, tmp_path),
    ):
        result = netpathctl(bus.address, "reload")
    assert result.returncode == 4
    assert "Rejected send message" not in result.stderr
    assert result.stderr == (
        "netpathctl: the bus refused org.netpathd1.Manager.Reload: its policy does not let "
        "this user call it (netpathd's own dbus/org.netpathd1.conf lets everyone call and "
        "leaves the decision to netpathd and polkit)\n"
    )


async def test_polkit_denials_name_the_action_and_how_to_get_it(
    ns: Netns, polkit: Polkit, tmp_path: Path
) -> None:
    with running_daemon(ns, polkit.bus, tmp_path):
        address = polkit.bus.address
        assert netpathctl_as(TEST_USERS[GRANTED], address, *RUNTIME_DNS) == (0, "")
        code, stderr = netpathctl_as(TEST_USERS[GRANTED], address, "reload")
        assert (code, stderr.count("\n")) == (4, 1)
        assert stderr.startswith("netpathctl: not authorized for org.netpathd1.reload without ")
        assert stderr.endswith(
            "run as root, or ask the administrator for a polkit rule granting "
            "org.netpathd1.reload\n"
        )
        # from a terminal netpathctl allows interaction: polkit is asked to authenticate
        # (here it cannot: no agent), so the answer is a plain refusal
        code, stderr = netpathctl_as(TEST_USERS[UNGRANTED], address, "reload", terminal=True)
        assert code == 4
        assert stderr == (
            "netpathctl: not authorized for org.netpathd1.reload: polkit refused it; "
            "run as root, or ask the administrator for a polkit rule granting "
            "org.netpathd1.reload\n"
        )
        polkit.stop()
        code, stderr = netpathctl_as(TEST_USERS[GRANTED], address, *RUNTIME_DNS)
        assert code == 4
        assert "polkit is not running on this bus, so only root may do this" in stderr
