"""A restricted unpickler for official LaMa checkpoints, which never executes code from the file.

Official ``best.ckpt`` files are PyTorch-Lightning pickles: besides tensors they hold an omegaconf ``DictConfig``
and Lightning callback classes. ``torch.load(weights_only=True)`` refuses those globals, and
``weights_only=False`` would import Lightning and run whatever the pickle names. This module rebuilds tensors
and plain containers, replaces classes of the known training frameworks by inert stubs, and refuses every other
global (``os.system``, ``builtins.eval`` ...) before anything is called. torch's weights-only unpickler cannot be
used for this because it only admits globals listed by exact name, and a stub must stand for any class of
omegaconf or Lightning that a checkpoint happens to contain.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import pickle
import types
from typing import Any

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle names a callable that is not a tensor rebuild, container or known stub."""


# Globals that only rebuild data: a subset of what torch's own weights-only unpickler admits.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
for _name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool"):
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)
for _dtype in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)

# Classes of these packages appear in Lightning checkpoints (hyper-parameters, callbacks, metadata); they become
# stubs that only record their arguments. Nothing of these packages is imported.
_STUBBED_PACKAGES = ("omegaconf", "pytorch_lightning", "lightning", "lightning_fabric", "typing", "pathlib", "numpy")


class Stub:
    """Inert stand-in for a class of a training framework: it stores what the pickle gives it and does nothing."""

    stub_of = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stub of {self.stub_of}>"


_stub_classes: dict[str, type[Stub]] = {}


def _stub(qualified_name: str) -> type[Stub]:
    if qualified_name not in _stub_classes:
        _stub_classes[qualified_name] = type(f"Stub[{qualified_name}]", (Stub,), {"stub_of": qualified_name})
    return _stub_classes[qualified_name]


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles name Python 2 modules (``__builtin__.long``); map them as pickle itself would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.split(".")[0] in _STUBBED_PACKAGES:
            return _stub(f"{module}.{name}")
        raise UnsafeCheckpointError(
            f"refusing to load: the pickle asks for '{module}.{name}', which is neither tensor data nor a known "
            "training-framework class (a checkpoint that names it may try to run code)"
        )


def _load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# torch.load takes a module-like object with ``Unpickler`` and ``load``; it wraps our Unpickler and resolves
# storages itself before delegating every other global to ``find_class`` above.
restricted_pickle = types.ModuleType("lama_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _load
restricted_pickle.__dict__["UnpicklingError"] = pickle.UnpicklingError


def load_checkpoint_file(path: Any, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` through the restricted unpickler: tensors and containers back, code never run."""
    return torch.load(path, map_location=map_location, pickle_module=restricted_pickle, weights_only=False)
