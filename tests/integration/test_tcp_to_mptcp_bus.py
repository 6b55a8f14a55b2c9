"""SystemWide and friends on a machine that refuses trampolines (these build machines).

Where BPF is refused, every TCP->MPTCP member must say so with the probe's reason, change
nothing (no state file written, EnableApp falls back to the seccomp wrapper), and refuse bad
input before asking anyone.  The VM tier (tests/vm) runs the same members where BPF works.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dbus_fast import Variant

from tests.integration.test_mptcp_apps import Setup, client, setup, systemd
from tests.integration.test_mptcp_bus import CallError, Client
from tests.support.ctl import netpathctl
from tests.support.fake_systemd import FakeSystemd

__all__ = ["client", "setup", "systemd"]  # the fixtures of test_mptcp_apps, shared

pytestmark = pytest.mark.integration

ERROR = "org.netpathd1.Error."
REASON = "refused to load the fmod_ret program for update_socket_protocol: EPERM"


async def refused_set(client: Client, name: str, value: Variant, error: str) -> str:
    with pytest.raises(CallError) as raised:
        await client.set(name, value)
    assert raised.value.name == ERROR + error, raised.value
    return raised.value.text


async def test_backend_is_seccomp_with_the_probes_reason(client: Client) -> None:
    backend = await client.get("TcpToMptcpBackend")
    assert backend.startswith("seccomp: bpf unavailable: the kernel "), backend
    assert REASON in backend
    assert await client.get("SystemWide") is False
    assert await client.get("TcpToMptcpStats") == {}


async def test_system_wide_is_refused_with_the_reason_and_nothing_is_written(
    setup: Setup, client: Client, tmp_path: Path
) -> None:
    text = await refused_set(client, "SystemWide", Variant("b", True), "NotSupported")
    assert text.startswith("TCP->MPTCP through BPF is unavailable: ") and REASON in text
    await refused_set(client, "SystemWideExclude", Variant("as", ["/user.slice"]), "NotSupported")
    assert await client.get("SystemWide") is False
    assert await client.get("SystemWideExclude") == []
    assert not [path for path in tmp_path.rglob("*") if path.name == "tcp-to-mptcp.conf"]  # noqa: ASYNC240
    with pytest.raises(CallError) as raised:
        await client.call("RegisterApp")
    assert raised.value.name == ERROR + "NotSupported"


@pytest.mark.parametrize("entry", ["sshd", "/a/../b", "x.socket"])
async def test_bad_entries_are_refused_before_anything_else(client: Client, entry: str) -> None:
    text = await refused_set(client, "SystemWideInclude", Variant("as", [entry]), "InvalidArgument")
    assert repr(entry) in text


async def test_enable_app_falls_back_to_the_seccomp_wrapper(
    setup: Setup, client: Client, systemd: FakeSystemd
) -> None:
    await client.call("EnableApp", "s", ["web.service"])
    text = (setup.systemd_dir / "web.service.d" / "50-netpathd-mptcp.conf").read_text()
    assert '"/usr/bin/netpathctl" "run" "--"' in text and "register" not in text
    assert await client.call("ListAppBackends") == [{"web.service": "seccomp"}]


def test_netpathctl_system_wide_on_fails_with_the_reason(setup: Setup) -> None:
    result = netpathctl(setup.bus.address, "mptcp", "system-wide", "on")
    assert result.returncode != 0
    assert REASON in result.stderr
    shown = netpathctl(setup.bus.address, "mptcp", "system-wide")
    assert shown.returncode == 0, shown.stderr
    assert (
        "System-wide: off" in shown.stdout and "Backend: seccomp: bpf unavailable" in shown.stdout
    )
