"""The kernel's rule for interface names, shared by every file and call that names a link.

``dev_valid_name()`` (net/core/dev.c): 1 to IFNAMSIZ-1 bytes, not ``.`` or ``..``,
no ``/``, ``:`` or white space.  A NUL byte cannot reach the kernel at all (it ends
the C string), so a name holding one is refused by name rather than truncated.
"""

from __future__ import annotations

IFNAMSIZ = 16  # the kernel's limit includes the terminating NUL


def interface_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a link name, or None when the kernel would take it."""
    if "\0" in name:
        return "contains a NUL byte"
    if not 0 < len(name.encode()) < IFNAMSIZ:
        return f"must be 1-{IFNAMSIZ - 1} bytes long"
    if name in {".", ".."} or any(
        ch in {"/", ":"} or ch.isspace() or not ch.isprintable() for ch in name
    ):
        return "is not a valid interface name"
    return None
