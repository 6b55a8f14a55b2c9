"""Run netpathd for real in a throw-away sandbox; Ctrl-C tears it all down.

The sandbox is a private network namespace (with a veth pair inside it, so
there are links, addresses and a default route to look at) and a private
dbus-daemon configured like the system bus with the project's own policy.
Nothing in the host's network, /etc/resolv.conf or system bus changes.
It reuses the helpers of the test suite, so what you try is what is tested.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.bus import private_bus  # noqa: E402
from tests.support.daemon import running_daemon  # noqa: E402
from tests.support.netns import netns  # noqa: E402


def main() -> int:
    with netns("npsbx") as ns, private_bus() as bus, tempfile.TemporaryDirectory() as tmp:
        ns.ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0-peer")
        ns.ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan0-peer")
        for link in ("lan0", "lan0-peer", "wan0", "wan0-peer"):
            ns.ip("link", "set", link, "up")
        ns.ip("addr", "add", "198.51.100.2/24", "dev", "lan0")
        ns.ip("addr", "add", "203.0.113.2/24", "dev", "wan0")
        ns.ip("route", "add", "default", "via", "203.0.113.1", "dev", "wan0", "metric", "100")
        workdir = Path(tmp)
        with running_daemon(ns, bus, workdir, "--log-level=debug") as daemon:
            address = bus.address
            ctl = ROOT / ".venv" / "bin" / "netpathctl"
            print(
                f"""
netpathd is running (pid {daemon.process.pid}) in network namespace {ns.name}
on a private bus. Try, in another terminal:

  busctl --address={address} get-property org.netpathd1 /org/netpathd1 \\
      org.netpathd1.Manager Version
  busctl --address={address} introspect org.netpathd1 /org/netpathd1

  export NETPATHD_BUS_ADDRESS={address}
  {ctl} status
  {ctl} dns set wan connection.interface-name wan0 connection.type ethernet \\
      ipv4.dns 203.0.113.53
  {ctl} dns explain
  {ctl} mptcp enable
  {ctl} mptcp endpoint add 198.51.100.2 dev lan0 subflow
  {ctl} mptcp endpoint show
  ip netns exec {ns.name} ip mptcp endpoint show     # the kernel agrees
  ip netns exec {ns.name} cat {daemon.resolv_conf}

State: {daemon.state_dir}   Config: {daemon.config_dir}   Resolver file: {daemon.resolv_conf}
Press Ctrl-C to stop and remove everything.
""",
                flush=True,
            )
            try:
                signal.pause()
            except KeyboardInterrupt:
                print("stopping netpathd and removing the sandbox", flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    raise SystemExit(main())
