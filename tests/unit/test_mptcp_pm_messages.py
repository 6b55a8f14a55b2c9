"""netpathd's mptcp_pm message classes say what pyroute2's say, except where pyroute2 is wrong.

kernel/mptcp_pm.py declares them itself so that the daemon never imports
``pyroute2.netlink.generic`` (its package loads pyroute2's whole socket layer).
"""

from __future__ import annotations

from pyroute2.netlink.generic import mptcp as pyroute2_mptcp

from netpathd.kernel import mptcp_pm


def test_the_attributes_are_pyroute2s_with_if_idx_as_the_kernels_s32() -> None:
    ours, theirs = mptcp_pm.pm_msg, pyroute2_mptcp.mptcp_msg
    assert (ours.prefix, ours.nla_map) == (theirs.prefix, theirs.nla_map)
    assert ours.pm_addr.prefix == theirs.pm_addr.prefix
    assert ours.pm_addr.nla_map[:-1] == theirs.pm_addr.nla_map[:-1]
    assert ours.pm_addr.nla_map[-1] == ("MPTCP_PM_ADDR_ATTR_IF_IDX", "int32")
    assert theirs.pm_addr.nla_map[-1] == ("MPTCP_PM_ADDR_ATTR_IF_IDX", "hex")


def test_the_family_and_commands_are_pyroute2s() -> None:
    names = [name for name in vars(pyroute2_mptcp) if name.startswith("MPTCP_PM_CMD_")]
    assert len(names) == 8  # UNSPEC and the seven commands
    for name in names[1:]:
        assert getattr(mptcp_pm, name) == getattr(pyroute2_mptcp, name), name
    assert mptcp_pm.MPTCP_GENL_NAME == pyroute2_mptcp.MPTCP_GENL_NAME
