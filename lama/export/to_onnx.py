"""Write an :class:`~lama.export.graph.InpaintingCall` as an ONNX file with dynamic batch, height and width."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch

from lama.export.graph import InpaintingCall
from lama.export.options import IMAGE_INPUT, MASK_INPUT, ONNX_OPSET
from lama.files import atomic_write


def example_inputs(multiple: int, minimum: int, square: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch to trace with: two items (torch.export specialises a size of 1) and sides above the minimum that
    differ (so that nothing is specialised to a square), except for a square-only generator."""
    side = -(-minimum // multiple) + 1
    height, width = multiple * side, multiple * (side if square else side + 1)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, height, width, generator=generator)
    mask = (torch.rand(2, 1, height, width, generator=generator) > 0.5).float()
    return image, mask


def onnx_model(call: InpaintingCall, output: str, multiple: int, minimum: int, square: bool) -> onnx.ModelProto:
    """The traced call as an ONNX model: sides any multiple of ``multiple`` from ``minimum`` up (equal for a
    square-only generator), any batch."""
    batch = torch.export.Dim("batch")
    height = torch.export.Dim("height", min=-(-minimum // multiple))
    width = height if square else torch.export.Dim("width", min=-(-minimum // multiple))
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
