"""DNS back-ends: one family of adapters that take a `DnsPlan` and make it so.

`base.DnsBackend` is the whole interface the DNS manager sees; `make_backend()` is the only
place that knows which module serves which `[main] dns` mode, so a fourth back-end (unbound,
say) is one new module and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netpathd.model.dns_plan import DnsMode

if TYPE_CHECKING:  # dns=default's resolver file is a back-end without base's machinery
    from netpathd.dns_backends.base import BackendContext, DnsBackend


def make_backend(mode: DnsMode, context: BackendContext) -> DnsBackend:
    # Imported on demand: a host in dns=default never loads the bus back-ends.
    if mode is DnsMode.DNSMASQ:
        from netpathd.dns_backends.dnsmasq import DnsmasqBackend  # noqa: PLC0415

        return DnsmasqBackend(context)
    if mode is DnsMode.SYSTEMD_RESOLVED:
        from netpathd.dns_backends.resolved import ResolvedBackend  # noqa: PLC0415

        return ResolvedBackend(context)
    from netpathd.dns_backends.resolv_file import NoBackend, ResolverFileBackend  # noqa: PLC0415

    if mode is DnsMode.NONE:
        return NoBackend()
    return ResolverFileBackend(context.resolver_file)
