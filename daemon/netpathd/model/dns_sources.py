"""The names of the sourced DNS connections: runtime ones that a D-Bus caller cannot take.

resolvconf records (`model.resolvconf`) and RA-learned servers (`model.ra_dns`) become
connections named by these prefixes.  The DNS manager refuses the prefixes to callers at
every start, while the two parsers load only when a record or an RA arrives.
"""

from __future__ import annotations

RESOLVCONF_PREFIX = "resolvconf:"  # resolvconf:KEY
RA_PREFIX = "ra:"  # ra:IFNAME
SOURCE_PREFIXES = (RESOLVCONF_PREFIX, RA_PREFIX)
