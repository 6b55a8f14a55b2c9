"""netpathd: Multipath TCP and DNS server ordering, over D-Bus."""

__version__ = "0.1.0"
BUS_NAME = "org.netpathd1"
OBJECT_PATH = "/org/netpathd1"
