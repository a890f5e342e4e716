"""Run an exported ONNX file with ONNX Runtime: what ``lama predict --backend onnxruntime`` calls in place of the
PyTorch generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lama.export.options import IMAGE_INPUT, MASK_INPUT, META_MINIMUM, META_MULTIPLE, META_OUT_KEY, META_SQUARE
from lama.models.model_dir import ModelDirError

# ONNX Runtime's name for the provider that runs on each torch device type.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def providers_for(device: torch.device) -> list[str | tuple[str, dict[str, int]]]:
    """The execution providers for ``device``; a CUDA device needs onnxruntime-gpu's provider."""
    import onnxruntime

    if device.type not in PROVIDERS:
        raise ModelDirError(f"device={device}: ONNX Runtime runs on {', '.join(PROVIDERS)}")
    if PROVIDERS[device.type] not in onnxruntime.get_available_providers():
        raise ModelDirError(f"device={device}: this onnxruntime has no {PROVIDERS[device.type]} "
                            "(install onnxruntime-gpu for CUDA)")
    if device.type == "cuda":
        return [(PROVIDERS["cuda"], {"device_id": device.index or 0}), PROVIDERS["cpu"]]
    return [PROVIDERS["cpu"]]


class OnnxRunner:
    """An exported file in an ONNX Runtime session: float32 NCHW image and mask in, its output (``out_key``) out."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelDirError("backend=onnxruntime: onnxruntime is not installed (pip install 'lama-lab[export]'; "
                                "onnxruntime-gpu in its place for CUDA)") from None
        path = Path(path)
        if not path.is_file():
            raise ModelDirError(f"{path}: not found; expected an ONNX file written by 'lama export'")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers_for(torch.device(device)))
        except (onnxruntime.capi.onnxruntime_pybind11_state.Fail,
                onnxruntime.capi.onnxruntime_pybind11_state.InvalidProtobuf,
                onnxruntime.capi.onnxruntime_pybind11_state.InvalidGraph) as error:
            raise ModelDirError(f"{path}: ONNX Runtime cannot load it ({str(error).splitlines()[0]})") from None
        names = [item.name for item in self.session.get_inputs()]
        metadata = self.session.get_modelmeta().custom_metadata_map
        if names != [IMAGE_INPUT, MASK_INPUT] or META_MULTIPLE not in metadata:
            raise ModelDirError(f"{path}: inputs {names} and no '{META_MULTIPLE}' property; expected a file "
                                f"written by 'lama export' (inputs {IMAGE_INPUT}, {MASK_INPUT})")
        self.path = path
        self.multiple = int(metadata[META_MULTIPLE])
        self.minimum = int(metadata[META_MINIMUM])
        self.square_only = metadata.get(META_SQUARE) == "true"
        self.out_key = metadata[META_OUT_KEY]
        self.output = self.session.get_outputs()[0].name

    def check_size(self, height: int, width: int) -> None:
        """One line unless the file takes a ``height`` × ``width`` input."""
        if height % self.multiple or width % self.multiple or min(height, width) < self.minimum or (
                self.square_only and height != width):
            shape = "square sides" if self.square_only else "sides"
            raise ValueError(f"{self.path}: an input of {height}x{width}; expected {shape} that are multiples of "
                             f"{self.multiple}, at least {self.minimum}")

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The output for float32 ``image`` [B,3,H,W] in [0,1] and ``mask`` [B,1,H,W] (values > 0 are holes)."""
        self.check_size(*image.shape[-2:])
        feeds = {IMAGE_INPUT: np.ascontiguousarray(image, np.float32),
                 MASK_INPUT: np.ascontiguousarray(mask, np.float32)}
        return self.session.run([self.output], feeds)[0]
