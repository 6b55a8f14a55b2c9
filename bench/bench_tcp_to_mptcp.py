"""What the TCP->MPTCP BPF program adds to socket(), against no program and `netpathctl run`.

Run as root, on demand (not a test): ``python3 bench/bench_tcp_to_mptcp.py [--count N]``.
It boots the VM of tests/vm (Debian's 6.12 kernel under qemu TCG: these machines refuse the
program) and, in that one run, times socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC) + close() with
bench/vm/socket_cost.c (static C, best of 5 rounds of N) in six cases:

- ``tcp``: no program loaded (the floor); ``tcp_in_cgroup`` the same from a non-root cgroup;
- ``mptcp_explicit``: IPPROTO_MPTCP asked for, no program: what an MPTCP socket costs anyway;
- ``bpf_converted``: SystemWide on, the socket becomes MPTCP through the program;
- ``bpf_out_of_scope``: the program attached, the caller's cgroup excluded (stays TCP);
- ``bpf_other_netns``: the program attached, the caller in a namespace not in its map;
- ``seccomp_run``: the same binary under ``netpathctl run`` (seccomp user notification).

Issue target: the program adds under 1 µs to socket() (``bpf_converted - mptcp_explicit``
and ``bpf_out_of_scope - tcp_in_cgroup``).  TCG emulates the CPU, so absolute numbers are
several times a real machine's; compare the differences and ratios, all from the same boot.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "daemon"))

from tests.vm import vm  # noqa: E402

ROUNDS = 3


def guest(out: Path, count: int) -> dict[str, dict[str, float]]:
    """Inside the VM: every case, ROUNDS times alternated (TCG's timing drifts with the
    host's load), best of each.  The floors are measured with no daemon, hence no program:
    once attached, the program stays attached until the daemon lets go of it."""
    from tests.support.bus import private_bus  # noqa: PLC0415
    from tests.support.daemon import start_daemon  # noqa: PLC0415
    from tests.support.netns import Netns, netns  # noqa: PLC0415

    cost = str(out / "socket_cost")
    results: dict[str, dict[str, float]] = {}
    cgroup = f"{vm.CGROUP2}/excluded"
    Path(cgroup).mkdir(exist_ok=True)
    in_cgroup = ("sh", "-c", f'echo $$ > {cgroup}/cgroup.procs; exec "$@"', "sh")
    with netns("bench") as ns, netns("other") as other, private_bus() as bus:
        ns.sysctl("net.mptcp.enabled", "1")
        workdir = Path(tempfile.mkdtemp(prefix="bench-"))

        def measure(
            name: str, *prefix: str, protocol: int = 0, where: Netns = ns, calls: int = count
        ) -> None:
            argv = where.exec_argv(*prefix, cost, str(protocol), str(calls), "5")
            result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
            found = json.loads(result.stdout.splitlines()[-1])
            if name not in results or found["ns_per_socket"] < results[name]["ns_per_socket"]:
                results[name] = found

        def ctl(*argv: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "netpathd.ctl.main", f"--bus-address={bus.address}",
                 *argv], check=True, env={"PYTHONPATH": str(ROOT / "daemon")},
            )  # fmt: skip

        for _round in range(ROUNDS):
            measure("tcp")
            measure("tcp_in_cgroup", *in_cgroup)  # a non-root cgroup charges its memcg
            measure("mptcp_explicit", protocol=262)
            daemon = start_daemon(ns, bus, workdir, ready_timeout=180)
            bus.busctl("set-property", "org.netpathd1", "/org/netpathd1", "org.netpathd1.Mptcp",
                       "SystemWideExclude", "as", "1", "/excluded")  # fmt: skip
            ctl("mptcp", "system-wide", "on")
            measure("bpf_converted")
            measure("bpf_out_of_scope", *in_cgroup)
            measure("bpf_other_netns", where=other)
            ctl("mptcp", "system-wide", "off")
            daemon.stop()
        netpathctl = [sys.executable, "-m", "netpathd.ctl.main", "run", "--"]
        # each trapped socket() is a round trip to the supervisor: fewer calls, same best-of-5
        measure("seccomp_run", "env", f"PYTHONPATH={ROOT / 'daemon'}", *netpathctl,
                calls=max(count // 20, 100))  # fmt: skip
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="socket() calls per round")
    parser.add_argument("--guest", type=Path, help=argparse.SUPPRESS)  # set inside the VM
    args = parser.parse_args()
    if args.guest is not None:
        (args.guest / "bench.json").write_text(json.dumps(guest(args.guest, args.count)))
        return 0
    out = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    out.chmod(0o777)
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(out / "socket_cost"),
         str(ROOT / "bench" / "vm" / "socket_cost.c")], check=True,
    )  # fmt: skip
    command = (
        f"PYTHONDONTWRITEBYTECODE=1 .venv/bin/python bench/bench_tcp_to_mptcp.py "
        f"--guest {vm.GUEST_OUT} --count {args.count}"
    )
    booted = vm.boot(command, out, timeout=900)
    if not (out / "bench.json").exists():
        print(booted.console[-3000:], booted.kernel_log[-2000:], file=sys.stderr)
        return 1
    results = json.loads((out / "bench.json").read_text())
    for name, result in results.items():
        print(f"{name:18} {result['ns_per_socket']:9.1f} ns  protocol {result['protocol']}")
    ns = {name: result["ns_per_socket"] for name, result in results.items()}
    for text, case, reference in (
        ("the program, converting", "bpf_converted", "mptcp_explicit"),
        ("the program, out of scope", "bpf_out_of_scope", "tcp_in_cgroup"),
        ("the program, other netns", "bpf_other_netns", "tcp"),
        ("netpathctl run (seccomp)", "seccomp_run", "mptcp_explicit"),
    ):
        added = ns[case] - ns[reference]
        print(f"added by {text:27} {added:10.1f} ns  ({ns[case] / ns[reference]:.2f}x {reference})")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
