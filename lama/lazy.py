"""Package namespaces whose names are imported from their submodules on first use (PEP 562), so that importing a
light submodule (the vocabularies the command line reads for its help) does not load torch through its package."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[Callable[[str], object], list[str]]:
    """A package's ``__getattr__`` and ``__all__`` for ``exports`` (submodule -> the names it defines)."""
    homes = {name: module for module, names in exports.items() for name in names}

    def attribute(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return attribute, sorted(homes)
