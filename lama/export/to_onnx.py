"""Write an :class:`~lama.export.graph.InpaintingCall` as an ONNX file with dynamic batch, height and width."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch

from lama.export.graph import InpaintingCall, example_inputs, fewest_multiples
from lama.export.options import IMAGE_INPUT, MASK_INPUT, ONNX_OPSET
from lama.files import atomic_write


def onnx_model(call: InpaintingCall, output: str, multiple: int, minimum: int, square: bool) -> onnx.ModelProto:
    """The traced call as an ONNX model: sides any multiple of ``multiple`` from ``minimum`` up (equal for a
    square-only generator), any batch."""
    batch = torch.export.Dim("batch")
    fewest = fewest_multiples(multiple, minimum)
    height = torch.export.Dim("height", min=fewest)
    width = height if square else torch.export.Dim("width", min=fewest)
    sizes = {0: batch, 2: multiple * height, 3: multiple * width}
    # The exporter reports each of its passes on stdout and warns about its own internals; a failure still raises.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            call, example_inputs(multiple, minimum, square), dynamo=True, opset_version=ONNX_OPSET,
            input_names=[IMAGE_INPUT, MASK_INPUT], output_names=[output],
            dynamic_shapes={IMAGE_INPUT: sizes, MASK_INPUT: sizes}, verbose=False)
    return program.model_proto


def write_onnx(model: onnx.ModelProto, path: Path, metadata: Mapping[str, str]) -> None:
    """Record ``metadata`` in the file's properties, check it with the ONNX checker, write it atomically."""
    onnx.helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model, full_check=True)
    atomic_write(path, lambda handle: handle.write(model.SerializeToString()), durable=True)
