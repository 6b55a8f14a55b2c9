"""netpathd: Multipath TCP and DNS server ordering, over D-Bus."""

import sys

__version__ = "0.1.0"
BUS_NAME = "org.netpathd1"
OBJECT_PATH = "/org/netpathd1"


def keep_openssl_out() -> None:
    """Run this process without OpenSSL: about 5 MiB of RSS and 4 ms of every start.

    netpathd and netpathctl speak no TLS, yet asyncio imports ``ssl`` (libssl) and dbus-fast
    ``hashlib``, whose ``_hashlib`` maps libcrypto.  Both are optional: asyncio runs with
    ``ssl = None`` (it only refuses TLS transports then), and hashlib falls back to CPython's
    own ``_sha256`` and friends, which give the same digests (the SHA-256 names of long DNS
    connection files).  A None in sys.modules makes their import raise ImportError, which
    both catch.  Only the entry points call this, before asyncio loads; a process that
    imports netpathd as a library, or has OpenSSL already, keeps it.
    """
    for name in ("ssl", "_hashlib"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
