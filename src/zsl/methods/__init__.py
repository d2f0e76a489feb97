"""One module per method; importing this package registers them all.

Every public module in this folder is imported (modules starting with ``_`` are shared
helpers). A module that needs an optional dependency must import it lazily (inside ``fit``), so
that ``import zsl`` works with the base install.
"""
import pkgutil
from importlib import import_module

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        import_module(f"{__name__}.{_info.name}")
