"""Whether the kernel has a link of a given name right now.

rtnetlink tells netpathd about a new link a moment after it exists; a caller that has
just created one (wg-quick runs ``ip link add wg0`` and then ``resolvconf -a tun.wg0``)
must not lose that race, so this asks the kernel itself (SIOCGIFINDEX).
"""

from __future__ import annotations

import socket


def link_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):  # no such device; a name the kernel cannot hold
        return False
    return True
