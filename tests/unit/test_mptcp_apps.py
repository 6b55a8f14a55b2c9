"""Per-unit MPTCP without a bus: drop-in text, unit names, and nothing half-done."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpathd.errors import AlreadyExists, Failed, InvalidArgument, NotFound
from netpathd.mptcp_apps import (
    DROP_IN_NAME,
    ExecCommand,
    MptcpApps,
    ServiceUnit,
    check_unit_name,
    exec_commands,
    render_drop_in,
)


class Units:
    def __init__(self, units: list[ServiceUnit]) -> None:
        self.units = {unit.name: unit for unit in units}
        self.reloads = 0
        self.refuse = False

    async def service(self, name: str) -> ServiceUnit:
        if name not in self.units:
            raise NotFound(f"no such unit: {name}")
        return self.units[name]

    async def reload(self) -> None:
        self.reloads += 1
        if self.refuse:
            raise Failed("systemd refused Reload()")


def entries(directory: Path) -> list[Path]:
    return list(directory.iterdir())


WEB = ServiceUnit(
    "web.service", "/lib/web.service", (ExecCommand("/bin/web", ("/bin/web", "-p", "80")),)
)


def test_exec_start_flags_become_prefixes() -> None:
    plain = exec_commands([["/bin/a", ["/bin/a"], True, 0, 0, 0, 0, 0, 0, 0]], None)
    assert plain == (ExecCommand("/bin/a", ("/bin/a",), frozenset({"ignore-failure"})),)
    ex = exec_commands(
        [["/bin/a", ["/bin/a"], False, 0, 0, 0, 0, 0, 0, 0]],
        [["/bin/a", ["/bin/a"], ["privileged", "ambient", "no-setuid", "no-env-expand"]]],
    )
    unit = ServiceUnit("a.service", "", ex)
    assert 'ExecStart=+!!:"/usr/bin/netpathctl" "run" "--" "/bin/a"\n' in render_drop_in(unit)


def test_arguments_are_quoted_for_systemd() -> None:
    unit = ServiceUnit(
        "a.service", "", (ExecCommand("/bin/a", ("x", "50%", 'say "hi"', "back\\slash", "$X")),)
    )
    line = render_drop_in(unit).splitlines()[-1]
    assert line == (
        'ExecStart="/usr/bin/netpathctl" "run" "--" "/bin/a" "50%%" "say \\"hi\\"" '
        '"back\\\\slash" "$X"'
    )  # argv[0] "x" differs from the path ("@" prefix): the path is run


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "not a unit name"),
        ("a/b.service", "not a unit name"),
        (".hidden.service", "not a unit name"),
        ("a.socket", r"not a service \(socket\)"),
        ("a", "not a service"),
        ("a@.service", "template"),
        ("a b.service", "not a valid service name"),
    ],
)
def test_bad_names(name: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        check_unit_name(name)


def test_instance_names_are_services() -> None:
    assert check_unit_name("getty@tty1.service") == "getty@tty1.service"


async def test_enable_twice_disable_and_list(tmp_path: Path) -> None:
    units = Units([WEB])
    apps = MptcpApps(units, tmp_path)
    path = await apps.enable("web.service")
    assert path == tmp_path / "web.service.d" / DROP_IN_NAME
    assert apps.units() == ["web.service"]
    with pytest.raises(AlreadyExists):
        await apps.enable("web.service")
    assert units.reloads == 1
    await apps.disable("web.service")
    assert not (tmp_path / "web.service.d").exists()
    with pytest.raises(NotFound):
        await apps.disable("web.service")
    assert apps.units() == []


async def test_refused_reload_leaves_nothing(tmp_path: Path) -> None:
    units = Units([WEB])
    units.refuse = True
    with pytest.raises(Failed):
        await MptcpApps(units, tmp_path).enable("web.service")
    assert entries(tmp_path) == []


async def test_an_already_wrapped_unit_is_not_wrapped_again(tmp_path: Path) -> None:
    wrapped = ServiceUnit(
        "w.service", "", (ExecCommand("/usr/bin/netpathctl", ("netpathctl", "run", "--", "/x")),)
    )
    with pytest.raises(AlreadyExists, match="already starts under"):
        await MptcpApps(Units([wrapped]), tmp_path).enable("w.service")


async def test_a_service_without_commands_is_refused(tmp_path: Path) -> None:
    empty = ServiceUnit("e.service", "", ())
    with pytest.raises(InvalidArgument, match="no ExecStart"):
        await MptcpApps(Units([empty]), tmp_path).enable("e.service")
    assert entries(tmp_path) == []


async def test_the_bpf_backend_registers_the_cgroup_before_the_unit_starts(
    tmp_path: Path,
) -> None:
    """ExecStartPre= runs in the unit's cgroup before the main process; ExecStart= is kept."""
    apps = MptcpApps(Units([WEB]), tmp_path)
    path = await apps.enable("web.service", bpf=True)
    text = path.read_text()
    assert '[Service]\nExecStartPre=+"/usr/bin/netpathctl" mptcp app register\n' in text
    assert "ExecStart=" not in text.replace("ExecStartPre=", "")
    assert apps.backend("web.service") == "bpf"
    await apps.disable("web.service")
    await apps.enable("web.service")
    assert apps.backend("web.service") == "seccomp"
    with pytest.raises(NotFound):
        apps.backend("other.service")
