"""A resolvconf record binds to the link the kernel has, even before rtnetlink told us."""

from __future__ import annotations

from pathlib import Path

from netpathd.dns_manager import DnsManager
from netpathd.dns_resolvconf import record_connection
from netpathd.files.resolv_conf import RcManager
from netpathd.model.links import NetState
from netpathd.model.resolvconf import Flags


def test_a_link_not_yet_announced_still_binds_the_record(tmp_path: Path) -> None:
    """wg-quick creates wg0 a few milliseconds before `resolvconf -a tun.wg0`.

    The daemon's link table may not have seen the link yet; ``lo`` stands for it here: every
    network namespace has it, and this manager's table is empty.
    """
    dns = DnsManager(tmp_path, tmp_path, tmp_path / "resolv.conf", RcManager.UNMANAGED)
    dns.update_network(NetState())
    conn = record_connection(dns, "tun.lo", "nameserver 192.0.2.53\n", Flags())
    assert conn.interface_name == "lo"  # not "tun", the IFACE.PROTO reading of the key
