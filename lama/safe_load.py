"""Loading checkpoints and training-state files that may be hostile: data comes back, code never runs.

A PyTorch file is a pickle, and a pickle can call anything it names. Every file is first read into memory and its
container inspected by its bytes: a ``torch.save`` zip (only the entries ``torch.save`` writes) or a legacy
``torch.save`` pickle is read further; a TorchScript archive (``constants.pkl``, ``code/``: ``torch.load`` would hand
it to ``torch.jit.load``, which runs its code), any other zip, a NumPy ``.npy``/``.npz`` file, an empty or unknown
file is refused unread. The pickle inside is then read by a restricted unpickler that refuses every global outside
an allow-list before anything is called. Two allow-lists:

* checkpoints (``load_checkpoint_file``): official ``best.ckpt`` files are PyTorch-Lightning pickles that hold an
  omegaconf ``DictConfig`` and Lightning callback classes besides the tensors; classes of those frameworks become
  inert stubs that only record their arguments, and nothing of those packages is imported.
* training states (``load_state_file``): tensors, plain containers and exactly the numpy callables an RNG state
  needs; no stubs.

torch's own weights-only unpickler cannot read official checkpoints: it admits globals by exact name only, and a
stub must stand for any class of omegaconf or Lightning that a checkpoint happens to contain. Every failure is one
:class:`CheckpointError` line naming the file and what was expected.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import functools
import io
import pickle
import re
import types
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy
import numpy._core.multiarray
import torch
from safetensors import SafetensorError, safe_open

EXPECTED = "expected a torch.save file (zip or legacy pickle) of tensors and plain data"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80  # the first opcode of every pickle of protocol 2 or later, which torch.save writes
TORCHSCRIPT_RECORDS = ("constants.pkl", "code/")
# The entries of a torch.save zip below its archive folder (torch 1.6 and later); anything else is another format.
TORCH_SAVE_RECORD = re.compile(
    r"data\.pkl|data/\w+|version|\.data/version|byteorder|\.format_version|\.storage_alignment|\.data/serialization_id"
)


class CheckpointError(ValueError):
    """A checkpoint or training-state file that is unreadable, of a refused kind, or asks to run code."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle names a callable that is not a tensor rebuild, container or allowed class."""


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (numpy arrays): latin-1 only, since other
    codecs are not data rebuilding."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refusing to load: the pickle calls _codecs.encode with {encoding!r}")
    return text.encode("latin1")


# Globals that only rebuild data: a subset of what torch's own weights-only unpickler admits.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("_codecs", "encode"): _latin1_bytes,
}
for _name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool"):
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)
for _dtype in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)

# What the RNG states of a training state hold besides tensors: numpy's MT19937 key array. ``numpy.core`` is how
# numpy 1 names the module that numpy 2 calls ``numpy._core``.
_NUMPY_RNG: dict[tuple[str, str], Any] = {
    ("numpy._core.multiarray", "_reconstruct"): numpy._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): numpy._core.multiarray._reconstruct,
    ("numpy", "ndarray"): numpy.ndarray,
    ("numpy", "dtype"): numpy.dtype,
    ("numpy.dtypes", "UInt32DType"): numpy.dtypes.UInt32DType,
}

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
    """The checkpoint allow-list: tensor data, containers, and stubs for the training frameworks' classes."""

    allowed: ClassVar[dict[tuple[str, str], Any]] = _ALLOWED
    stubbed_packages: ClassVar[tuple[str, ...]] = _STUBBED_PACKAGES
    refused = "which is neither tensor data nor a known training-framework class"

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles name Python 2 modules (``__builtin__.long``); map them as pickle itself would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self.allowed:
            found = self.allowed[(module, name)]
            # A fresh wrapper of a Python function: a BUILD opcode aimed at the global (``__defaults__``...) can
            # only change the wrapper, never the function that later loads use.
            return functools.partial(found) if isinstance(found, types.FunctionType) else found
        if module.split(".")[0] in self.stubbed_packages:
            return _stub(f"{module}.{name}")
        raise UnsafeCheckpointError(
            f"refusing to load: the pickle asks for '{module}.{name}', {self.refused} (a file that names it may "
            "try to run code)"
        )


class StateUnpickler(RestrictedUnpickler):
    """The training-state allow-list: tensor data, containers and numpy RNG arrays; no stubs."""

    allowed: ClassVar[dict[tuple[str, str], Any]] = {**_ALLOWED, **_NUMPY_RNG}
    stubbed_packages: ClassVar[tuple[str, ...]] = ()
    refused = "which is not tensor, numpy RNG-state or plain container data"


def _pickle_module(unpickler: type[RestrictedUnpickler]) -> types.ModuleType:
    """What ``torch.load`` takes as ``pickle_module``: it subclasses ``Unpickler`` to resolve storages itself and
    delegates every other global to our ``find_class``."""
    module = types.ModuleType(f"lama_{unpickler.__name__}")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.__dict__["UnpicklingError"] = pickle.UnpicklingError
    return module


_CHECKPOINT_PICKLE = _pickle_module(RestrictedUnpickler)
_STATE_PICKLE = _pickle_module(StateUnpickler)


def _reason(error: BaseException) -> str:
    """The first sentence of an error, without torch's ``[enforce fail at ...]`` prefix: one readable clause."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)
    return text.split(". ")[0].rstrip(".")


def _zip_problem(data: bytes) -> str | None:
    """Why a zip is not a torch.save checkpoint, judged by its entries as torch itself lists them; None if it is."""
    try:
        # torch's own zip reader, so that what is inspected here is what torch.load would read.
        records = torch._C.PyTorchFileReader(io.BytesIO(data)).get_all_records()
    except RuntimeError as error:
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            names = []
        if names and all(name.endswith(".npy") for name in names):
            return "a NumPy .npz archive"
        return f"a damaged or foreign zip archive ({_reason(error)})"
    if any(record.startswith(TORCHSCRIPT_RECORDS) for record in records):
        return "a TorchScript archive (it carries code), refused unread"
    if records and all(record.endswith(".npy") for record in records):
        return "a NumPy .npz archive"
    foreign = sorted(record for record in records if not TORCH_SAVE_RECORD.fullmatch(record))
    if foreign:
        return f"a zip archive with entries torch.save never writes (e.g. {foreign[0]!r}), refused unread"
    if "data.pkl" not in records:
        return "a zip archive without data.pkl"
    return None


def _container_problem(data: bytes) -> str | None:
    """Why these bytes are not a torch.save file, by their magic bytes and zip entries; None if they are one."""
    if not data:
        return "empty file"
    if data.startswith(NPY_MAGIC):
        return "a NumPy .npy array"
    if data.startswith(ZIP_MAGIC):
        return _zip_problem(data)
    if data[0] == PICKLE_PROTO:
        return None  # a legacy torch.save pickle: read by the restricted unpickler
    return f"not a PyTorch file (it starts with {data[:8]!r})"


def _load(path: str | Path, pickle_module: types.ModuleType, map_location: str | torch.device) -> Any:
    try:
        data = Path(path).read_bytes()  # one read: the bytes inspected are the bytes loaded
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror or error}); {EXPECTED}") from None
    problem = _container_problem(data)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}; {EXPECTED}")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, pickle_module=pickle_module,
                          weights_only=False)
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"{path}: {error}") from None
    except Exception as error:  # whatever a damaged file makes torch or pickle raise is this file's error
        raise CheckpointError(f"{path}: truncated or damaged ({_reason(error)}); {EXPECTED}") from error


def load_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """A model checkpoint (official Lightning ``best.ckpt`` or ours): tensors and containers back, framework
    classes as inert :class:`Stub` objects, code never run."""
    return _load(path, _CHECKPOINT_PICKLE, map_location)


def load_state_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """A training-state file (optimizer, RNG, progress): only tensors, plain containers and numpy RNG arrays."""
    return _load(path, _STATE_PICKLE, map_location)


def check_safetensors_file(path: str | Path) -> None:
    """A safetensors file holds no code; its header must parse and its offsets must cover the file exactly."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_reason(error)})") from None
