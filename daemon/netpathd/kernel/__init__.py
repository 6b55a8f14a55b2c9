"""Adapters to the kernel: the only package that imports pyroute2.

pyroute2's ``__init__`` imports all of the library (IPDB, NDB, conntrack,
nl80211, ...): about 160 modules, 100+ ms and 10 MiB before netpathd can
use the five it needs.  So the ``pyroute2`` package is registered here
without running its ``__init__``; submodules load on demand as usual, and the
first access to a name only ``__init__`` defines (``from pyroute2 import
IPRoute``) runs it then, so other users of pyroute2 in the same process still
get the whole library.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def _register_lazy_pyroute2() -> None:
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or "pyroute2" in sys.modules:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def lazy_attribute(name: str) -> object:
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        loader.exec_module(package)  # the full library, on first need only
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2' has no attribute {name!r}") from None

    package.__getattr__ = lazy_attribute  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package


_register_lazy_pyroute2()
