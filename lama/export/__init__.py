"""Export a model dir to ONNX (exact Fourier units, dynamic sizes, fp32 or fp16) or TorchScript, and run an ONNX
file with ONNX Runtime behind ``lama predict``.

Each name below is imported from its submodule when first used, so that the command line reads the vocabulary of
``lama.export.options`` without loading torch.
"""

from __future__ import annotations

from lama.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "lama.export.exporter": ("ExportResult", "export_model"),
    "lama.export.options": ("ExportOptions",),
    "lama.export.runtime": ("OnnxRunner",),
})
