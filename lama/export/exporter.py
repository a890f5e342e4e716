"""``lama export``: a model dir (official or ours, any generator kind) to an ONNX or TorchScript file."""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from lama import __version__
from lama.config import ConfigError
from lama.export.graph import exportable_call, square_only
from lama.export.options import META_MINIMUM, META_MULTIPLE, META_OUT_KEY, META_SQUARE, ExportOptions
from lama.files import try_writing_in
from lama.models.generators import architecture_of, input_size_rule
from lama.models.model_dir import DEFAULT_CHECKPOINT, ModelDirError, load_model, read_model_dir
from lama.weights import sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    seconds: float

    def __str__(self) -> str:
        return f"wrote {self.path} ({self.format}, {self.seconds:.1f} s)"


def check_output(path: Path) -> None:
    """Fail before any work unless a file can be written at ``path`` (its folder is created)."""
    if path.is_dir():
        raise ModelDirError(f"{path}: is a folder; expected the path of the file to write")
    try:
        try_writing_in(path.parent)
    except OSError as error:
        raise ModelDirError(f"{path}: cannot write there ({error.strerror or error})") from None


def require_onnx_exporter() -> None:
    """One line unless the packages ``torch.onnx`` writes with are installed (the ``export`` extra)."""
    for package in ("onnx", "onnxscript"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"format=onnx: the {package} package is not installed (pip install 'lama-lab[export]')")


def export_model(model_dir: str | Path, output: str | Path, options: ExportOptions | None = None,
                 checkpoint: str = DEFAULT_CHECKPOINT) -> ExportResult:
    """Export the generator of ``model_dir`` (or of a ``.ckpt`` inside one) to ``output``; every input is checked,
    each with a one-line error, before the model is loaded."""
    options = options or ExportOptions()
    output = Path(output)
    chosen = options.format_for(output)
    spec = read_model_dir(model_dir, checkpoint)  # a dir that is not a model dir fails here, named
    check_output(output)
    if chosen == "onnx":
        require_onnx_exporter()
    start = time.perf_counter()
    model = load_model(model_dir, checkpoint)
    multiple, minimum = input_size_rule(spec.generator)
    square = square_only(model)
    metadata = {
        META_MULTIPLE: str(multiple), META_MINIMUM: str(minimum), META_SQUARE: str(square).lower(),
        META_OUT_KEY: options.out_key, "lama.architecture": str(architecture_of(spec.generator)),
        "lama.generator_kind": spec.generator["kind"], "lama.checkpoint": spec.checkpoint.name,
        "lama.checkpoint_sha256": sha256_of(spec.checkpoint), "lama.version": __version__,
    }
    blend = options.out_key == "inpainted"
    log.info("exporting %s to %s (%s)", spec.checkpoint, output, chosen)
    if chosen == "torchscript":
        from lama.export.to_torchscript import write_torchscript

        write_torchscript(exportable_call(model, blend=blend), output, multiple, minimum, square, metadata)
    else:
        from lama.export.to_onnx import onnx_model, write_onnx

        call = exportable_call(model, options.fourier == "matmul", options.precision, blend)
        metadata.update({"lama.fourier": options.fourier, "lama.precision": options.precision})
        write_onnx(onnx_model(call, options.out_key, multiple, minimum, square), output, metadata)
    return ExportResult(output, chosen, time.perf_counter() - start)
