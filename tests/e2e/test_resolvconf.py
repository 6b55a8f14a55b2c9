"""``resolvconf`` as its real callers run it: wg-quick, OpenVPN's update-resolv-conf, dhclient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_dns_daemon import DNS, nameservers
from tests.support.bus import PrivateBus
from tests.support.ctl import netpathctl_ok
from tests.support.daemon import Daemon, daemon_env
from tests.support.dbus_client import bus_client
from tests.support.netns import Netns

pytestmark = pytest.mark.integration

NETPATHCTL = Path(sys.executable).parent / "netpathctl"

# update-resolv-conf (OpenVPN's contrib script, shipped by Debian's openvpn package), its
# "up" and "down" cases as written there: foreign_option_N become the record's text.
UPDATE_RESOLV_CONF = r"""
case "$script_type" in
  up)
    for optionname in ${!foreign_option_*} ; do
      option="${!optionname}"
      part1=$(echo "$option" | cut -d " " -f 1)
      if [ "$part1" == "dhcp-option" ] ; then
        part2=$(echo "$option" | cut -d " " -f 2)
        part3=$(echo "$option" | cut -d " " -f 3)
        if [ "$part2" == "DNS" ] ; then
          IF_DNS_NAMESERVERS="$IF_DNS_NAMESERVERS $part3"
        fi
        if [[ "$part2" == "DOMAIN" || "$part2" == "DOMAIN-SEARCH" ]] ; then
          IF_DNS_SEARCH="$IF_DNS_SEARCH $part3"
        fi
      fi
    done
    R=""
    if [ "$IF_DNS_SEARCH" ]; then
      R="search "
      for DS in $IF_DNS_SEARCH ; do
        R="${R} $DS"
      done
    R="${R}
"
    fi
    for NS in $IF_DNS_NAMESERVERS ; do
      R="${R}nameserver $NS
"
    done
    echo -n "$R" | $RESOLVCONF -a "${dev}.inet"
    ;;
  down)
    $RESOLVCONF -d "${dev}.inet"
    ;;
esac
"""


@pytest.fixture
def resolvconf_bin(tmp_path: Path) -> Path:
    """What the packages install: /usr/sbin/resolvconf, a symlink to netpathctl."""
    link = tmp_path / "bin" / "resolvconf"
    link.parent.mkdir()
    link.symlink_to(NETPATHCTL)
    return link


def env_for(bus: PrivateBus) -> dict[str, str]:
    return {**daemon_env(), "NETPATHD_BUS_ADDRESS": bus.address}


def resolvconf(
    bus: PrivateBus, program: Path, *argv: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(program), *argv],
        input=stdin,
        env=env_for(bus),
        capture_output=True,
        timeout=60,
        check=False,
    )


def links(ns: Netns, *names: str) -> None:
    for name in names:
        ns.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        ns.ip("link", "set", name, "up")


def connections(bus: PrivateBus) -> dict[str, dict[str, object]]:
    shown = json.loads(netpathctl_ok(bus.address, "--json", "dns", "show"))
    return {conn["name"]: conn for conn in shown["connections"]}


def wan(bus: PrivateBus) -> None:
    netpathctl_ok(bus.address, "dns", "set", "wan", "connection.interface-name", "eth0",
                  "connection.type", "ethernet", "ipv4.dns", "192.0.2.53")  # fmt: skip


def test_wg_quick_adds_an_exclusive_record_and_removes_it(
    daemon: Daemon, bus: PrivateBus, ns: Netns, resolvconf_bin: Path
) -> None:
    links(ns, "eth0", "wg0")
    wan(bus)
    # wg-quick: `resolvconf -a "$(resolvconf_iface_prefix)$INTERFACE" -m 0 -x` with
    # printf 'nameserver %s\n' "${DNS[@]}" and 'search %s\n' on stdin
    text = b"nameserver 198.51.100.53\nnameserver 2001:db8::53\nsearch corp.example\n"
    added = resolvconf(bus, resolvconf_bin, "-a", "tun.wg0", "-m", "0", "-x", stdin=text)
    assert added.returncode == 0, added.stderr
    assert nameservers(daemon.resolv_conf) == ["198.51.100.53", "2001:db8::53"]
    record = connections(bus)["resolvconf:tun.wg0"]
    assert record["connection.interface-name"] == "wg0"
    assert record["source"] == "resolvconf"
    assert record["ipv4.dns-priority"] == -1
    shown = netpathctl_ok(bus.address, "dns", "show").splitlines()
    assert shown[0].split()[:4] == ["NAME", "DEVICE", "TYPE", "SOURCE"]
    assert [line.split()[:4] for line in shown if line.startswith("resolvconf:")] == [
        ["resolvconf:tun.wg0", "wg0", "generic", "resolvconf"]
    ]
    explained = json.loads(netpathctl_ok(bus.address, "--json", "dns", "explain"))
    assert [(e["connection"], e["source"]) for e in explained if e["status"] == "used"] == [
        ("resolvconf:tun.wg0", "resolvconf"),
        ("resolvconf:tun.wg0", "resolvconf"),
    ]
    listed = resolvconf(bus, resolvconf_bin, "-l", "tun.*")
    assert listed.stdout.decode() == (
        "# resolv.conf from tun.wg0\nnameserver 198.51.100.53\nnameserver 2001:db8::53\n"
        "search corp.example\n"
    )

    # wg-quick's down: `resolvconf -d "$(resolvconf_iface_prefix)$INTERFACE" -f`
    for _ in range(2):  # -f: the second time there is nothing left, still success
        removed = resolvconf(bus, resolvconf_bin, "-d", "tun.wg0", "-f")
        assert removed.returncode == 0, removed.stderr
        assert nameservers(daemon.resolv_conf) == ["192.0.2.53"]
    missing = resolvconf(bus, resolvconf_bin, "-d", "tun.wg0")
    assert missing.returncode == 1
    assert b"no resolvconf record 'tun.wg0'" in missing.stderr


def test_openvpn_update_resolv_conf(
    daemon: Daemon, bus: PrivateBus, ns: Netns, resolvconf_bin: Path
) -> None:
    ns.ip("tuntap", "add", "tun0", "mode", "tun")
    ns.ip("link", "set", "tun0", "up")
    env = {
        **env_for(bus),
        "RESOLVCONF": str(resolvconf_bin),
        "dev": "tun0",
        "foreign_option_1": "dhcp-option DNS 203.0.113.53",
        "foreign_option_2": "dhcp-option DOMAIN corp.example",
        "foreign_option_3": "dhcp-option DNS 203.0.113.54",
        "foreign_option_4": "dhcp-option DOMAIN-SEARCH lab.example",
    }
    for script_type in ("up", "down"):
        done = subprocess.run(
            ["bash", "-c", UPDATE_RESOLV_CONF],
            env={**env, "script_type": script_type},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        if script_type == "up":
            assert nameservers(daemon.resolv_conf) == ["203.0.113.53", "203.0.113.54"]
            assert "search corp.example lab.example" in daemon.resolv_conf.read_text()
            assert connections(bus)["resolvconf:tun0.inet"]["connection.interface-name"] == "tun0"
    assert "resolvconf:tun0.inet" not in connections(bus)


async def test_an_openvpn_record_goes_before_the_lan_holding_the_default_route(
    daemon: Daemon, bus: PrivateBus, ns: Netns, resolvconf_bin: Path
) -> None:
    """update-resolv-conf passes neither -x nor -m: the tunnel's kind makes it a VPN's record,
    which NetworkManager's rules put first (and openresolv and Debian's resolvconf too)."""
    links(ns, "eth0")
    ns.ip("address", "add", "192.0.2.10/24", "dev", "eth0")
    ns.ip("route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
    wan(bus)
    async with bus_client(bus.address) as client:
        ns.ip("tuntap", "add", "tun0", "mode", "tun")
        ns.ip("link", "set", "tun0", "up")
        # A record takes the kind of the link the daemon knows: wait until it has seen
        # tun0, through a runtime connection on it that is used once it has.
        probe = ["connection.interface-name", "tun0", "connection.type", "generic",
                 "ipv4.dns", "198.51.100.99", "--runtime"]  # fmt: skip
        netpathctl_ok(bus.address, "dns", "set", "probe", *probe)
        await client.wait_change(DNS, "Nameservers", ["192.0.2.53", "198.51.100.99"])
    netpathctl_ok(bus.address, "dns", "remove", "probe")
    added = resolvconf(bus, resolvconf_bin, "-a", "tun0.inet", stdin=b"nameserver 203.0.113.53\n")
    assert added.returncode == 0, added.stderr
    assert nameservers(daemon.resolv_conf) == ["203.0.113.53", "192.0.2.53"]
    record = connections(bus)["resolvconf:tun0.inet"]
    assert (record["connection.type"], record["ipv4.dns-priority"]) == ("vpn", 0)


def test_dhclient_script_record_by_metric(daemon: Daemon, bus: PrivateBus, ns: Netns) -> None:
    links(ns, "eth0", "eth1")
    # dhclient-script's make_resolv_conf hook, spelled as `netpathctl resolvconf`
    for key, server, metric in (
        ("eth0.dhclient", "192.0.2.1", "20"),
        ("eth1.dhcp", "192.0.2.2", "10"),
    ):
        argv = [sys.executable, "-m", "netpathd.ctl.main", "resolvconf", "-m", metric, "-a", key]
        done = subprocess.run(
            argv, input=f"nameserver {server}\n".encode(), env=env_for(bus), check=False,
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert nameservers(daemon.resolv_conf) == ["192.0.2.2", "192.0.2.1"]
    shown = connections(bus)
    assert shown["resolvconf:eth0.dhclient"]["connection.interface-name"] == "eth0"
    assert shown["resolvconf:eth0.dhclient"]["metric"] == 20
    listed = resolvconf(bus, NETPATHCTL, "resolvconf", "-i")
    assert listed.stdout.decode().split() == ["eth1.dhcp", "eth0.dhclient"]


@pytest.mark.parametrize(
    "case",
    [
        (os.urandom(64) + b"\xff\xfe", b"stdin: not text (not UTF-8)"),
        (b"nameserver 192.0.2.9\n" + b"a" * 1_000_000 + b"\n", b"more than 65536 bytes"),
        (b"nameserver not-an-address\n", b"line 1: nameserver 'not-an-address' is not an address"),
        (b"search corp.exa\nmple.com\nnameserver 192.0.2.9\n", b"line 2: unknown keyword"),
        (b"nameserver 192.0.2.9\nsearch bad_domain!\n", b"is not a domain name"),
    ],
    ids=["binary", "1MB-line", "not-an-address", "newline-in-domain", "bad-domain"],
)
def test_malformed_input_changes_nothing(
    daemon: Daemon, bus: PrivateBus, ns: Netns, resolvconf_bin: Path, case: tuple[bytes, bytes]
) -> None:
    stdin, message = case
    links(ns, "eth0")
    wan(bus)
    before = daemon.resolv_conf.read_bytes(), connections(bus)
    failed = resolvconf(bus, resolvconf_bin, "-a", "eth0.dhclient", stdin=stdin)
    assert failed.returncode == 1  # what openresolv and Debian's resolvconf exit with
    assert message in failed.stderr, failed.stderr
    assert (daemon.resolv_conf.read_bytes(), connections(bus)) == before


def test_the_daemon_refuses_bad_text_from_any_bus_client(daemon: Daemon, bus: PrivateBus) -> None:
    result = bus.busctl_result(
        "call", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Dns", "AddResolvconf",
        "ssubb", "eth0.dhcp", "nameserver 192.0.2.1\nbogus line\n", "0", "false", "false",
    )  # fmt: skip
    assert result.returncode != 0
    assert "line 2: unknown keyword 'bogus'" in result.stderr
    assert "resolvconf:eth0.dhcp" not in connections(bus)
