"""What ``lama export`` can be asked for by name, and the contract of an exported file.

This module imports no torch, so that the command line lists the choices without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from lama.config import ConfigError, check_choices
from lama.models.inference_options import OUT_KEYS

# torch.jit (a module that IOPaint, simple-lama-inpainting and any torch program load) or an ONNX file.
FORMATS = ("onnx", "torchscript")
# A file's name says its format when --format is left out.
FORMAT_OF_SUFFIX = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".jit": "torchscript"}
# How an ONNX file computes the Fourier units: products with the DFT basis built in the graph (every runtime runs
# them: TensorRT, DirectML and OpenVINO have no usable DFT), or ONNX's DFT operator. Both are exact. ``matmul`` is
# the default because it is also the faster in ONNX Runtime on CPU: 1.4–1.6× the DFT file's speed for lama-fourier
# and Big LaMa at 512² and 1024² (benchmarks/README.md, "Export").
FOURIER_MODES = ("matmul", "dft")
DEFAULT_FOURIER = "matmul"
# The ONNX file's number format. fp16 keeps the Fourier units (transform, spectral convolution, norm) in fp32, and
# its inputs and output stay fp32: a spectrum's DC bin sums a whole feature map, past what half precision holds.
ONNX_PRECISIONS = ("fp32", "fp16")
DEFAULT_ONNX_PRECISION = "fp32"
# DFT with its axis as an input (opset 20) lets one file serve every height and width.
ONNX_OPSET = 20
# The exported call: image [B,3,H,W] in [0,1], mask [B,1,H,W] (values > 0 are holes) -> out_key [B,3,H,W].
IMAGE_INPUT = "image"
MASK_INPUT = "mask"
# How ``lama predict`` runs a model: the PyTorch generator of a model dir, or an exported ONNX file.
BACKENDS = ("torch", "onnxruntime")
DEFAULT_BACKEND = "torch"


def format_of(path: str | PurePath) -> str | None:
    """The format a file's suffix names, if any."""
    return FORMAT_OF_SUFFIX.get(PurePath(path).suffix.lower())


@dataclass
class ExportOptions:
    """How a model dir becomes a file; ``format`` None means "from the output's suffix"."""

    format: str | None = None
    fourier: str = DEFAULT_FOURIER
    precision: str = DEFAULT_ONNX_PRECISION
    out_key: str = OUT_KEYS[0]

    def __post_init__(self) -> None:
        choices = {"fourier": FOURIER_MODES, "precision": ONNX_PRECISIONS, "out_key": OUT_KEYS}
        check_choices("", self, choices if self.format is None else {"format": FORMATS, **choices})

    def format_for(self, output: str | PurePath) -> str:
        """The format to write ``output`` in (the one asked for, else the one its suffix names), checked against
        the ONNX-only options."""
        chosen = self.format or format_of(output)
        if chosen is None:
            raise ConfigError(f"{output}: cannot tell the format from the suffix; name it with --format "
                              f"({', '.join(FORMATS)}) or use one of {', '.join(FORMAT_OF_SUFFIX)}")
        if chosen == "torchscript" and (self.fourier, self.precision) != (DEFAULT_FOURIER, DEFAULT_ONNX_PRECISION):
            raise ConfigError(f"format=torchscript: fourier and precision are ONNX options (got fourier={self.fourier}"
                              f", precision={self.precision}); TorchScript runs torch's own FFT in fp32")
        return chosen


# The properties every exported file records (ONNX metadata, the TorchScript archive's lama.json); the runtime reads
# the first four to pad and check its inputs.
META_MULTIPLE = "lama.size_multiple"
META_MINIMUM = "lama.size_minimum"
META_SQUARE = "lama.square_only"
META_OUT_KEY = "lama.out_key"
