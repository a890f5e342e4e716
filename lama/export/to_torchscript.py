"""Write an :class:`~lama.export.graph.InpaintingCall` as a TorchScript module, the ``big-lama.pt`` that IOPaint
and simple-lama-inpainting load with ``torch.jit.load`` and call as ``model(image, mask)``."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from lama.export.graph import InpaintingCall, example_inputs
from lama.files import atomic_write

# The file inside the TorchScript archive that holds what ONNX files keep in their metadata properties.
METADATA_FILE = "lama.json"


def write_torchscript(call: InpaintingCall, path: Path, multiple: int, minimum: int, square: bool,
                      metadata: Mapping[str, str]) -> None:
    """Trace ``call`` on an example batch and write it atomically. Tracing records the sizes as the inputs'
    (``aten::size``), not as constants, so the module runs at any batch and any side the generator takes."""
    image, mask = example_inputs(multiple, minimum, square)
    buffer = io.BytesIO()
    # Tracer warnings are about shape arithmetic, which is traced symbolically; torch.jit's deprecation is torch's
    # (the tools this file is for load TorchScript).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(call, (image[:1], mask[:1]), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(dict(metadata), sort_keys=True)})
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()), durable=True)
